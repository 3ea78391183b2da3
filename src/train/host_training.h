// The training executor of a backend whose memory is the host's (the CPU
// backend): forward and backward through its Executor, the loss, weight
// decay and RMSProp by the library's host code (loss.h, optimizer.h), the
// state in host tensors.
#pragma once
#include <memory>

#include "unetind/backend.h"

namespace unetind {

// `exec` must have been compiled for training.
std::unique_ptr<TrainingExecutor> make_host_training_executor(std::unique_ptr<Executor> exec,
                                                              const TrainingConfig& training, Communicator* group);

}  // namespace unetind
