# Optional CUDA backend (src/backend/cuda/): built when CMake finds the CUDA
# toolkit and cuDNN; NCCL, when found too, adds the multi-GPU communicator.
# Include from the top-level CMakeLists.txt after add_subdirectory(tests): it
# adds to the `unetind` target defined there. The library's source glob picks
# up src/backend/cuda/*.cpp as well, so without CUDA this file takes them out
# again and the project builds exactly as before.
option(UNETIND_WITH_CUDA "Build the CUDA backend when the CUDA toolkit and cuDNN are found" ON)

set(UNETIND_CUDA_FOUND OFF)
if(UNETIND_WITH_CUDA)
  # nvcc is rarely on PATH; the toolkit's default prefix is.
  if(NOT DEFINED CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    find_package(CUDAToolkit QUIET)
    if(CUDAToolkit_FOUND)
      find_library(UNETIND_CUDNN_LIBRARY cudnn HINTS ${CUDAToolkit_LIBRARY_DIR} /usr/local/cuda/lib64
                   PATH_SUFFIXES lib64 lib)
      find_path(UNETIND_CUDNN_INCLUDE_DIR cudnn.h HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/local/cuda/include)
      if(UNETIND_CUDNN_LIBRARY AND UNETIND_CUDNN_INCLUDE_DIR)
        set(UNETIND_CUDA_FOUND ON)
      endif()
    endif()
  endif()
endif()

file(GLOB UNETIND_CUDA_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/backend/cuda/*.cpp
     ${CMAKE_SOURCE_DIR}/src/backend/cuda/*.cu)
get_target_property(unetind_sources unetind SOURCES)
list(REMOVE_ITEM unetind_sources ${UNETIND_CUDA_SOURCES})

if(UNETIND_CUDA_FOUND)
  # One architecture (Hopper, H100) keeps nvcc's time small; override with
  # -DCMAKE_CUDA_ARCHITECTURES=... for other GPUs.
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 90)
  endif()
  enable_language(CUDA)
  # CMake 3.25 predates nvcc's C++20 support; teach it the flag.
  if(NOT CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
    set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
    set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
    set(CMAKE_CUDA20_COMPILE_FEATURES cuda_std_20)
    list(APPEND CMAKE_CUDA_COMPILE_FEATURES cuda_std_20)
  endif()
  # `unetind` exists already, so its properties are set here rather than
  # initialised from CMAKE_CUDA_*.
  set_target_properties(unetind PROPERTIES CUDA_ARCHITECTURES "${CMAKE_CUDA_ARCHITECTURES}" CUDA_STANDARD 20
                                           CUDA_STANDARD_REQUIRED ON CUDA_EXTENSIONS OFF)

  find_library(UNETIND_NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR} /usr/local/cuda/lib64)
  find_path(UNETIND_NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/local/cuda/include)
  set(cuda_sources ${UNETIND_CUDA_SOURCES})
  if(NOT (UNETIND_NCCL_LIBRARY AND UNETIND_NCCL_INCLUDE_DIR))
    list(FILTER cuda_sources EXCLUDE REGEX "/nccl_[^/]*$")
  endif()
  set_property(TARGET unetind PROPERTY SOURCES ${unetind_sources} ${cuda_sources})

  # The training kernels round as the host code they share does (no fused
  # multiply-adds), so that both backends' updates agree to the last bit
  # where their inputs do.
  set_source_files_properties(${CMAKE_SOURCE_DIR}/src/backend/cuda/training.cu PROPERTIES COMPILE_OPTIONS "--fmad=false")
  # The top-level -Wall -Wextra are host-compiler flags nvcc does not take.
  set_property(TARGET unetind PROPERTY COMPILE_OPTIONS
               "$<$<COMPILE_LANGUAGE:CXX>:-Wall;-Wextra>" "$<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra>")
  target_include_directories(unetind PRIVATE ${UNETIND_CUDNN_INCLUDE_DIR})
  target_link_libraries(unetind PRIVATE CUDA::cudart ${UNETIND_CUDNN_LIBRARY})
  # Public: the tests tell "built without CUDA" from "no CUDA device".
  target_compile_definitions(unetind PUBLIC UNETIND_HAVE_CUDA=1)
  if(UNETIND_NCCL_LIBRARY AND UNETIND_NCCL_INCLUDE_DIR)
    target_include_directories(unetind PRIVATE ${UNETIND_NCCL_INCLUDE_DIR})
    target_link_libraries(unetind PRIVATE ${UNETIND_NCCL_LIBRARY})
    target_compile_definitions(unetind PRIVATE UNETIND_HAVE_NCCL=1)
    message(STATUS "CUDA backend: on (CUDA ${CUDAToolkit_VERSION}, sm_${CMAKE_CUDA_ARCHITECTURES}, NCCL)")
  else()
    message(STATUS "CUDA backend: on (CUDA ${CUDAToolkit_VERSION}, sm_${CMAKE_CUDA_ARCHITECTURES}, no NCCL)")
  endif()
else()
  set_property(TARGET unetind PROPERTY SOURCES ${unetind_sources})
  if(UNETIND_WITH_CUDA)
    message(STATUS "CUDA backend: off (needs the CUDA toolkit and cuDNN)")
  else()
    message(STATUS "CUDA backend: off (UNETIND_WITH_CUDA=OFF)")
  endif()
endif()
