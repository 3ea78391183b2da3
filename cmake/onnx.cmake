# Optional ONNX export through Debian's libonnx-dev (its protobuf classes and
# checker), and OpenCV's DNN module for the test that runs the exported model.
# Include from the top-level CMakeLists.txt after add_subdirectory(tests):
# it adds to the `unetind` and `test_onnx_export` targets defined there.
# Without libonnx-dev the library still builds; export_onnx() then throws and
# `unet-industrial export` says so.
option(UNETIND_WITH_ONNX "Build the ONNX export when libonnx-dev is found" ON)

set(UNETIND_ONNX_FOUND OFF)
if(UNETIND_WITH_ONNX)
  # ONNX's CMake package links protobuf::libprotobuf, which FindProtobuf defines.
  find_package(Protobuf QUIET)
  if(Protobuf_FOUND)
    find_package(ONNX CONFIG QUIET)
    if(ONNX_FOUND AND TARGET onnx)
      set(UNETIND_ONNX_FOUND ON)
    endif()
  endif()
endif()

if(UNETIND_ONNX_FOUND)
  message(STATUS "ONNX export: on (libonnx ${ONNX_VERSION})")
  target_link_libraries(unetind PRIVATE onnx)
  target_compile_definitions(unetind PRIVATE UNETIND_HAVE_ONNX=1)
elseif(UNETIND_WITH_ONNX)
  message(STATUS "ONNX export: off (install libonnx-dev to build it)")
else()
  message(STATUS "ONNX export: off (UNETIND_WITH_ONNX=OFF)")
endif()

if(TARGET test_onnx_export)
  if(UNETIND_ONNX_FOUND)
    target_link_libraries(test_onnx_export PRIVATE onnx)
    target_compile_definitions(test_onnx_export PRIVATE UNETIND_HAVE_ONNX=1)
  endif()
  find_package(OpenCV QUIET COMPONENTS core dnn)
  if(OpenCV_FOUND)
    target_include_directories(test_onnx_export SYSTEM PRIVATE ${OpenCV_INCLUDE_DIRS})
    target_link_libraries(test_onnx_export PRIVATE ${OpenCV_LIBS})
    target_compile_definitions(test_onnx_export PRIVATE UNETIND_HAVE_OPENCV_DNN=1)
  else()
    message(STATUS "OpenCV DNN not found: test_onnx_export will not run the exported model")
  endif()
endif()
