#pragma once
#include <memory>

#include "backend/cpu/net.h"
#include "unetind/backend.h"

namespace unetind::cpu {

std::unique_ptr<Executor> compile_cpu(const Graph& graph, const ExecConfig& config);

// The activation arena of an executor compile_cpu() made: its size, what the
// activations would take without reuse, and where each one went.
struct ArenaStats {
  size_t arena_bytes = 0;
  size_t activation_bytes = 0;
  std::vector<Placement> placements;
};
ArenaStats arena_stats(const Executor& exec);

// INT8 calibration: the largest |value| of each channel of every graph
// node's output, in node order, over `count` prepared images (count x height
// x width x 1), run one at a time in fp32.
std::vector<std::vector<float>> node_max_abs(const Graph& graph, const std::vector<NamedTensor>& params,
                                             const float* images, int count, int height, int width);

}  // namespace unetind::cpu
