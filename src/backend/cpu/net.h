// The CPU backend's execution model, as in oneDNN's cnn_training example: at
// compile time every op appends its primitives and their arguments to a step
// list (one for forward, one for backward); running is a loop over the list.
// Memory formats are chosen by the primitives (format_tag::any) and a reorder
// step is inserted only where a consumer wants another layout.
//
// Memory, as llm.c plans it: parameters and their gradients own their
// buffers; every activation (op outputs, gradients flowing backward, reorder
// temporaries, pooling workspaces, scratchpads) is placed by plan() in one
// arena, where a buffer is reused once the last step touching it has run.
// The arena may be shared with other nets that run at other times
// (ActivationArena, backend.h).
#pragma once
#include <dnnl.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>
#include <vector>

#include "unetind/backend.h"

namespace unetind::cpu {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

// A oneDNN primitive and its arguments, or a kernel of our own where
// oneDNN 2.6 has none as fast (`kernel` set; `args` then only tell plan()
// what the kernel reads and writes).
struct Step {
  dnnl::primitive primitive;
  std::unordered_map<int, memory> args;
  std::function<void()> kernel;
};

// Where plan() put one activation: live from step `first` to step `last`
// (indices into the phases laid end to end), at [offset, offset + bytes).
struct Placement {
  size_t first = 0, last = 0;
  size_t offset = 0, bytes = 0;
};

// `attr` with a user-managed scratchpad. This oneDNN is built for concurrent
// execution, where a library-managed scratchpad belongs to its primitive:
// dozens of them would stay allocated side by side. Net::append gives each
// a slice of the arena instead, live for its own step only.
dnnl::primitive_attr user_scratchpad(dnnl::primitive_attr attr = {});

class Net {
 public:
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  std::vector<Step> forward;
  std::vector<Step> backward;  // in execution order

  // A memory with its own buffer, for what outlives a pass (parameters,
  // their gradients and layouts).
  memory make(const memory::desc& desc);
  // A memory whose buffer plan() places in the arena.
  memory make_activation(const memory::desc& desc);
  // A view (e.g. a channel slice) into an activation: shares its buffer and
  // keeps it live.
  memory make_view(const memory& activation, const memory::desc& view_desc);
  bool is_activation(const memory& m) const;

  // Appends the primitive of `pd` (made with user_scratchpad()) with `args`
  // to `steps`, plus the scratchpad it asks for.
  void append(std::vector<Step>& steps, const dnnl::primitive_desc_base& pd, std::unordered_map<int, memory> args);

  // Keeps `activation` live to the end of the last phase, so that it can be
  // read after a run (calibration).
  void keep_live(const memory& activation);

  // Places every activation the steps use. `phases` run in this order, each
  // possibly again without the earlier ones (backward() may follow one
  // forward() twice): an activation used in more than one phase therefore
  // stays live to the end of the last phase that uses it. Call once, after
  // every step is appended. `shared` (null: an arena of its own) must be
  // used by one net at a time; run() takes it anew each time.
  void plan(const std::vector<const std::vector<Step>*>& phases, std::shared_ptr<ActivationArena> shared = nullptr);
  size_t arena_bytes() const { return arena_bytes_; }
  const std::vector<Placement>& placements() const { return placements_; }
  // The activations' sizes added up: what the arena would be without reuse.
  size_t activation_bytes() const;

  void run(std::vector<Step>& steps);

 private:
  // Points every activation into the arena, where it has moved (or another
  // net has made it grow) since the last run.
  void bind();

  struct Activation {
    memory mem;
    std::vector<memory> views;
    bool keep_live = false;
  };
  std::vector<Activation> activations_;
  static constexpr size_t kNotPlaced = SIZE_MAX;  // an activation no step uses
  std::vector<size_t> offsets_;                    // of each activation in the arena
  std::shared_ptr<ActivationArena> arena_;
  void* bound_to_ = nullptr;
  size_t arena_bytes_ = 0;
  std::vector<Placement> placements_;
};

// Returns `from` if it already has `desc`, else a new activation of `desc`
// and a reorder step appended to `steps`.
memory reorder_if_needed(Net& net, std::vector<Step>& steps, const memory& from, const memory::desc& desc);

// A reorder between memories that own their buffers (parameters and their
// gradients), run outside the planned passes; `attr` may scale (INT8).
Step reorder_step(const memory& from, const memory& to, const dnnl::primitive_attr& attr = {});

// `attr` whose output scales are `scales` along dimensions `dims` (one per
// index of those dimensions, the last fastest), or one common scale when
// `dims` is empty.
dnnl::primitive_attr scaled(const std::vector<float>& scales, const std::vector<int>& dims,
                            dnnl::primitive_attr attr = {});

// A plain (user-layout) f32 memory with no buffer of its own: callers set the
// data handle to their own array before each run.
memory user_memory(Net& net, const memory::dims& dims, tag format);

// Descriptors for activations: N x C x H x W, layout left to the primitive.
inline memory::desc any_desc(int n, int c, int h, int w, dt type) {
  return memory::desc({n, c, h, w}, type, tag::any);
}

}  // namespace unetind::cpu
