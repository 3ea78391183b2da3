// The CPU backend's execution model, as in oneDNN's cnn_training example: at
// compile time every op appends its primitives and their arguments to a step
// list (one for forward, one for backward); running is a loop over the list.
// Memory formats are chosen by the primitives (format_tag::any) and a reorder
// step is inserted only where a consumer wants another layout.
#pragma once
#include <dnnl.hpp>
#include <unordered_map>
#include <vector>

namespace unetind::cpu {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

struct Step {
  dnnl::primitive primitive;
  std::unordered_map<int, memory> args;
};

struct Net {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  std::vector<Step> forward;
  std::vector<Step> backward;  // in execution order

  memory make(const memory::desc& desc) { return memory(desc, engine); }
  void run(std::vector<Step>& steps);
};

// Returns `from` if it already has `desc`, else a new memory of `desc` and a
// reorder step appended to `steps`.
memory reorder_if_needed(Net& net, std::vector<Step>& steps, const memory& from, const memory::desc& desc);

// A plain (user-layout) memory with no buffer of its own: callers set the
// data handle to their own array before each run.
memory user_memory(Net& net, const memory::dims& dims, tag format);

// Descriptors for activations: N x C x H x W, layout left to the primitive.
inline memory::desc any_desc(int n, int c, int h, int w, dt type) {
  return memory::desc({n, c, h, w}, type, tag::any);
}

}  // namespace unetind::cpu
