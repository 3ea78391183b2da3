// Arithmetic that the CPU code and the CUDA kernels share (loss terms, the
// RMSProp update): one definition, compiled for the host by the C++ compiler
// and for the device by nvcc.
#pragma once

#if defined(__CUDACC__)
#define UNETIND_HOST_DEVICE __host__ __device__
#else
#define UNETIND_HOST_DEVICE
#endif
