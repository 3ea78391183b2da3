#include "train/rank_agreement.h"

#include <cstring>

#include "unetind/error.h"

namespace unetind {

namespace {

void broadcast_tensors(Communicator& group, std::vector<NamedTensor>& tensors) {
  for (NamedTensor& t : tensors) group.broadcast(t.tensor.data.data(), t.tensor.data.size() * sizeof(float), 0);
}

// FNV-1a over the bytes of every value: equal weights, equal hashes.
uint64_t fingerprint(const std::vector<NamedTensor>& params) {
  uint64_t h = 1469598103934665603ULL;
  for (const NamedTensor& t : params) {
    const auto* bytes = reinterpret_cast<const unsigned char*>(t.tensor.data.data());
    for (size_t i = 0; i < t.tensor.data.size() * sizeof(float); ++i) h = (h ^ bytes[i]) * 1099511628211ULL;
  }
  return h;
}

}  // namespace

void share_start_state(Communicator& group, StartState& state) {
  struct Position {
    int64_t step;
    LoaderState loader_state;
    bool resumed;
  } position{state.step, state.loader_state, state.resumed};
  group.broadcast(&position, sizeof position, 0);
  state.step = position.step;
  state.loader_state = position.loader_state;
  state.resumed = position.resumed;
  broadcast_tensors(group, state.params);
  broadcast_tensors(group, state.optimizer_state);
}

int agree_on_stop(Communicator& group, int signal) {
  // How many ranks got a signal, and their numbers' mean: a rank that got
  // none stops with the others' (their number where only one kind came).
  float stats[2] = {signal != 0 ? 1.0f : 0.0f, static_cast<float>(signal)};
  group.all_reduce_mean(stats, 2);
  if (signal != 0 || stats[0] == 0.0f) return signal;
  return static_cast<int>(stats[1] / stats[0] + 0.5f);
}

void check_same_weights(Communicator& group, const std::vector<NamedTensor>& params, int64_t step) {
  uint64_t reference = fingerprint(params);
  const uint64_t mine = reference;
  group.broadcast(&reference, sizeof reference, 0);
  float differs = mine == reference ? 0.0f : 1.0f;
  group.all_reduce_mean(&differs, 1);
  const int count = static_cast<int>(differs * float(group.size()) + 0.5f);
  if (count > 0)
    throw Error("data parallel: at step " + std::to_string(step) + ", " + std::to_string(count) + " of " +
                std::to_string(group.size()) + " ranks hold other weights than rank 0" +
                (mine == reference ? "" : " (this rank among them)"));
}

}  // namespace unetind
