// The CUDA backend: devices "cuda:N", one executor per graph and shape.
#pragma once
#include <memory>
#include <string>

#include "unetind/backend.h"

namespace unetind::cuda {

// Usable CUDA devices; 0 when there is none or no driver.
int device_count();

// "CUDA runtime 12.4, driver 12.6, cuDNN 9.1.0, NCCL 2.21.5" (the driver
// where one is installed, NCCL where the build has it).
std::string library_versions();

// "cuda" (device 0) or "cuda:N". Errors say when there is no CUDA device and
// which indices exist.
std::unique_ptr<Backend> make_cuda_backend(const std::string& device);

}  // namespace unetind::cuda
