# Optional MPI (src/train/mpi_communicator.cpp): data-parallel training across
# processes and machines, `mpirun -np N unet-industrial train ...`. Built when
# CMake finds an MPI (Debian: libopenmpi-dev); without it the library builds
# as before and a run that mpirun starts with several ranks is refused.
# Include from the top-level CMakeLists.txt after add_subdirectory(tests), as
# cuda.cmake: it adds to the `unetind` target defined there.
option(UNETIND_WITH_MPI "Build data-parallel training over MPI when an MPI is found" ON)

set(UNETIND_MPI_SOURCE ${CMAKE_SOURCE_DIR}/src/train/mpi_communicator.cpp)
set(UNETIND_MPI_FOUND OFF)
if(UNETIND_WITH_MPI)
  # The C API from C++ (the project enables no C); not MPI's old C++ bindings.
  set(MPI_CXX_SKIP_MPICXX ON)
  find_package(MPI COMPONENTS CXX QUIET)
  if(MPI_CXX_FOUND)
    set(UNETIND_MPI_FOUND ON)
  endif()
endif()

if(UNETIND_MPI_FOUND)
  target_link_libraries(unetind PRIVATE MPI::MPI_CXX)
  # Public: the tests tell "built without MPI" from "no mpirun".
  target_compile_definitions(unetind PUBLIC UNETIND_HAVE_MPI=1)
  # The distributed tests launch the CLI with the mpirun of this MPI (and
  # skip, saying so, where there is none).
  if(TARGET unetind_test_support AND MPIEXEC_EXECUTABLE)
    target_compile_definitions(unetind_test_support PUBLIC UNETIND_MPIRUN="${MPIEXEC_EXECUTABLE}")
  endif()
  message(STATUS "MPI: on (mpirun: ${MPIEXEC_EXECUTABLE})")
else()
  get_target_property(unetind_sources unetind SOURCES)
  list(REMOVE_ITEM unetind_sources ${UNETIND_MPI_SOURCE})
  set_property(TARGET unetind PROPERTY SOURCES ${unetind_sources})
  if(UNETIND_WITH_MPI)
    message(STATUS "MPI: off (no MPI found; Debian: libopenmpi-dev)")
  else()
    message(STATUS "MPI: off (UNETIND_WITH_MPI=OFF)")
  endif()
endif()
