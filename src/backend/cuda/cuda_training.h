// The CUDA backend's TrainingExecutor: parameters, gradients and the
// optimiser's slots stay on the GPU; a step moves the batch in and a few
// scalars out (and, across ranks, the gradients through the communicator).
#pragma once
#include <memory>

#include "unetind/backend.h"

namespace unetind::cuda {

std::unique_ptr<TrainingExecutor> make_cuda_training_executor(const Graph& graph, const ExecConfig& config,
                                                              const TrainingConfig& training, Communicator* group,
                                                              int device);

}  // namespace unetind::cuda
