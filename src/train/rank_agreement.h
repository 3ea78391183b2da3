// What the ranks of a data-parallel run agree on besides the gradients
// (data_parallel.h): where the run starts, when it stops, and that their
// weights are the same. Each is a collective: every rank calls it at the same
// point of the run.
#pragma once
#include <cstdint>
#include <vector>

#include "unetind/data_parallel.h"
#include "unetind/loader.h"
#include "unetind/safetensors.h"

namespace unetind {

// The state a run starts from. Rank 0 has it (from its checkpoint, or
// initialised); the other ranks come with tensors of the same shapes.
struct StartState {
  std::vector<NamedTensor> params, optimizer_state;
  int64_t step = 0;
  LoaderState loader_state;
  bool resumed = false;
};
// Rank 0's start state, on every rank (Horovod's broadcast of the initial
// variables): only rank 0 reads the run directory.
void share_start_state(Communicator& group, StartState& state);

// The stop signal of any rank (0: none), the same on every rank, so that all
// of them stop after the same step. `signal` is this rank's.
int agree_on_stop(Communicator& group, int signal);

// Throws an Error on every rank unless every rank holds rank 0's weights.
void check_same_weights(Communicator& group, const std::vector<NamedTensor>& params, int64_t step);

}  // namespace unetind
