// The CUDA backend: devices "cuda:N", one executor per graph and shape.
#pragma once
#include <memory>
#include <string>

#include "unetind/backend.h"

namespace unetind::cuda {

// Usable CUDA devices; 0 when there is none or no driver.
int device_count();

// "cuda" (device 0) or "cuda:N". Errors say when there is no CUDA device and
// which indices exist.
std::unique_ptr<Backend> make_cuda_backend(const std::string& device);

}  // namespace unetind::cuda
