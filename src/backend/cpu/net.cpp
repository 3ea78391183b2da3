#include "backend/cpu/net.h"

#include <algorithm>
#include <numeric>

#include "unetind/error.h"

namespace unetind::cpu {

namespace {
// oneDNN's own buffers are 64-byte aligned; a slice of the arena keeps that.
constexpr size_t kAlignment = 64;
size_t aligned(size_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }
}  // namespace

dnnl::primitive_attr user_scratchpad(dnnl::primitive_attr attr) {
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

memory Net::make(const memory::desc& desc) { return memory(desc, engine); }

memory Net::make_activation(const memory::desc& desc) {
  memory m(desc, engine, nullptr);
  activations_.push_back({m, {}});
  return m;
}

memory Net::make_view(const memory& activation, const memory::desc& view_desc) {
  for (Activation& a : activations_) {
    if (a.mem.get() != activation.get()) continue;
    memory view(view_desc, engine, nullptr);
    a.views.push_back(view);
    return view;
  }
  throw Error("cpu backend: make_view() of a memory that is not an activation of this net");
}

void Net::keep_live(const memory& activation) {
  for (Activation& a : activations_)
    if (a.mem.get() == activation.get()) a.keep_live = true;
}

bool Net::is_activation(const memory& m) const {
  return std::any_of(activations_.begin(), activations_.end(),
                     [&](const Activation& a) { return a.mem.get() == m.get(); });
}

void Net::append(std::vector<Step>& steps, const dnnl::primitive_desc_base& pd,
                 std::unordered_map<int, memory> args) {
  const memory::desc scratchpad = pd.scratchpad_desc();
  if (scratchpad.get_size() > 0) args[DNNL_ARG_SCRATCHPAD] = make_activation(scratchpad);
  steps.push_back({dnnl::primitive(pd.get()), std::move(args), {}});
}

size_t Net::activation_bytes() const {
  return std::accumulate(activations_.begin(), activations_.end(), size_t{0},
                         [](size_t sum, const Activation& a) { return sum + aligned(a.mem.get_desc().get_size()); });
}

void Net::plan(const std::vector<const std::vector<Step>*>& phases, std::shared_ptr<ActivationArena> shared) {
  // Live range of each activation over the phases laid end to end.
  std::unordered_map<dnnl_memory_t, size_t> owner;
  for (size_t a = 0; a < activations_.size(); ++a) {
    owner[activations_[a].mem.get()] = a;
    for (const memory& v : activations_[a].views) owner[v.get()] = a;
  }
  constexpr size_t kUnused = SIZE_MAX;
  std::vector<size_t> first(activations_.size(), kUnused), last(activations_.size(), 0);
  std::vector<size_t> first_phase(activations_.size(), 0), last_phase(activations_.size(), 0);
  std::vector<size_t> phase_end;
  size_t step = 0;
  for (size_t p = 0; p < phases.size(); ++p) {
    for (const Step& s : *phases[p]) {
      for (const auto& [arg, mem] : s.args) {
        auto it = owner.find(mem.get());
        if (it == owner.end()) continue;  // owns its buffer, or the caller's
        const size_t a = it->second;
        if (first[a] == kUnused) first[a] = step, first_phase[a] = p;
        last[a] = step;
        last_phase[a] = p;
      }
      ++step;
    }
    phase_end.push_back(step == 0 ? 0 : step - 1);
  }
  for (size_t a = 0; a < activations_.size(); ++a) {
    if (first[a] == kUnused) continue;
    if (first_phase[a] != last_phase[a]) last[a] = std::max(last[a], phase_end[last_phase[a]]);
    if (activations_[a].keep_live) last[a] = std::max(last[a], step - 1);
  }

  // Greedy by size (largest first), each at the lowest offset that overlaps
  // no placed activation live at the same time.
  std::vector<size_t> order;
  for (size_t a = 0; a < activations_.size(); ++a)
    if (first[a] != kUnused) order.push_back(a);
  auto bytes_of = [&](size_t a) { return aligned(activations_[a].mem.get_desc().get_size()); };
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return bytes_of(x) > bytes_of(y); });
  placements_.clear();
  offsets_.assign(activations_.size(), kNotPlaced);
  arena_bytes_ = 0;
  for (size_t a : order) {
    std::vector<std::pair<size_t, size_t>> taken;  // [begin, end) of live neighbours, by begin
    for (const Placement& p : placements_)
      if (p.first <= last[a] && first[a] <= p.last) taken.push_back({p.offset, p.offset + p.bytes});
    std::sort(taken.begin(), taken.end());
    size_t at = 0;
    for (const auto& [begin, end] : taken) {
      if (at + bytes_of(a) <= begin) break;
      at = std::max(at, end);
    }
    offsets_[a] = at;
    placements_.push_back({first[a], last[a], at, bytes_of(a)});
    arena_bytes_ = std::max(arena_bytes_, at + bytes_of(a));
  }

  arena_ = shared ? std::move(shared) : std::make_shared<ActivationArena>();
  bound_to_ = nullptr;
  bind();
}

void Net::bind() {
  if (!arena_) return;  // not planned yet: its steps use no activation
  auto* base = static_cast<uint8_t*>(arena_->reserve(arena_bytes_));
  if (base == bound_to_) return;
  for (size_t a = 0; a < activations_.size(); ++a) {
    if (offsets_[a] == kNotPlaced) continue;
    activations_[a].mem.set_data_handle(base + offsets_[a]);
    // A view's descriptor carries its offset into the viewed buffer.
    for (memory& v : activations_[a].views) v.set_data_handle(base + offsets_[a]);
  }
  bound_to_ = base;
}

void Net::run(std::vector<Step>& steps) {
  bind();
  for (Step& s : steps) {
    if (s.kernel)
      s.kernel();
    else
      s.primitive.execute(stream, s.args);
  }
  stream.wait();
}

memory reorder_if_needed(Net& net, std::vector<Step>& steps, const memory& from, const memory::desc& desc) {
  if (from.get_desc() == desc) return from;
  memory to = net.make_activation(desc);
  net.append(steps, dnnl::reorder::primitive_desc(net.engine, from.get_desc(), net.engine, desc, user_scratchpad()),
             {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}});
  return to;
}

Step reorder_step(const memory& from, const memory& to, const dnnl::primitive_attr& attr) {
  return {dnnl::reorder(from, to, attr), {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}}, {}};
}

dnnl::primitive_attr scaled(const std::vector<float>& scales, const std::vector<int>& dims,
                            dnnl::primitive_attr attr) {
  int mask = 0;
  for (int d : dims) mask |= 1 << d;
  attr.set_output_scales(mask, scales);
  return attr;
}

memory user_memory(Net& net, const memory::dims& dims, tag format) {
  return memory(memory::desc(dims, dt::f32, format), net.engine, nullptr);
}

}  // namespace unetind::cpu
