#include "unetind/optimizer.h"

#include <cmath>
#include <map>

#include "train/rmsprop_step.h"
#include "unetind/error.h"

namespace unetind {

float LrSchedule::at(int64_t step) const {
  if (decay_steps <= 0) throw Error("learning-rate schedule: decay steps must be positive, got " +
                                    std::to_string(decay_steps));
  if (step < 0) throw Error("learning-rate schedule: negative step " + std::to_string(step));
  // TF evaluates factor^floor(step / decay_steps) and the product in float32.
  const float exponent = static_cast<float>(step / decay_steps);
  return base * std::pow(factor, exponent);
}

RmsProp::RmsProp(RmsPropConfig config) : config_(config) {}

RmsPropSlots RmsProp::initial_slots(const Shape& shape) const {
  // TF1's RMSPropOptimizer._create_slots builds "rms" with ones_initializer, so
  // the first steps divide by about sqrt(1 - rho) instead of by |g|; "mg" and
  // "momentum" are zeros slots.
  RmsPropSlots s;
  s.ms = Tensor(shape, 1.0f);
  if (config_.centered) s.mg = Tensor(shape, 0.0f);
  s.mom = Tensor(shape, 0.0f);
  return s;
}

void RmsProp::step(std::vector<NamedTensor>& params, const std::vector<Tensor>& grads, float lr) {
  if (grads.size() != params.size())
    throw Error("RMSProp: " + std::to_string(grads.size()) + " gradients for " + std::to_string(params.size()) +
                " parameters");
  if (slots_.empty()) {
    for (const NamedTensor& p : params) slots_.push_back(initial_slots(p.tensor.shape));
  }
  if (slots_.size() != params.size())
    throw Error("RMSProp: state holds " + std::to_string(slots_.size()) + " slots, step got " +
                std::to_string(params.size()) + " parameters");

  const RmsPropStep update(config_, lr);
  for (size_t t = 0; t < params.size(); ++t) {
    Tensor& w = params[t].tensor;
    const Tensor& g = grads[t];
    RmsPropSlots& s = slots_[t];
    if (g.shape != w.shape || s.ms.shape != w.shape)
      throw Error("RMSProp: " + params[t].name + " has shape " + shape_to_string(w.shape) + ", its gradient " +
                  shape_to_string(g.shape) + ", its slots " + shape_to_string(s.ms.shape));
    float* wd = w.data.data();
    const float* gd = g.data.data();
    float* ms = s.ms.data.data();
    float* mom = s.mom.data.data();
    const int64_t n = w.numel();
    if (config_.centered) {
      float* mg = s.mg.data.data();
#pragma omp parallel for schedule(static) if (n > 16384)
      for (int64_t i = 0; i < n; ++i) update.apply<true>(wd[i], gd[i], ms[i], &mg[i], mom[i]);
    } else {
#pragma omp parallel for schedule(static) if (n > 16384)
      for (int64_t i = 0; i < n; ++i) update.apply<false>(wd[i], gd[i], ms[i], nullptr, mom[i]);
    }
  }
}

std::vector<RmsPropSlots> RmsProp::slots(const std::vector<NamedTensor>& params) const {
  if (!slots_.empty()) return slots_;
  std::vector<RmsPropSlots> initial;
  for (const NamedTensor& p : params) initial.push_back(initial_slots(p.tensor.shape));
  return initial;
}

namespace {
struct SlotNames {
  std::string ms, mg, mom;
};

SlotNames slot_names(const std::string& param, bool centered) {
  if (centered) return {param + "/RMSProp", param + "/RMSProp_1", param + "/RMSProp_2"};
  return {param + "/RMSProp", "", param + "/RMSProp_1"};
}
}  // namespace

std::vector<NamedTensor> RmsProp::state(const std::vector<NamedTensor>& params) const {
  if (!slots_.empty() && slots_.size() != params.size())
    throw Error("RMSProp: state holds " + std::to_string(slots_.size()) + " slots, asked for " +
                std::to_string(params.size()) + " parameters");
  std::vector<NamedTensor> out;
  for (size_t t = 0; t < params.size(); ++t) {
    const RmsPropSlots s = slots_.empty() ? initial_slots(params[t].tensor.shape) : slots_[t];
    const SlotNames names = slot_names(params[t].name, config_.centered);
    out.push_back({names.ms, s.ms});
    if (config_.centered) out.push_back({names.mg, s.mg});
    out.push_back({names.mom, s.mom});
  }
  return out;
}

void RmsProp::load_state(const std::vector<NamedTensor>& params, const std::vector<NamedTensor>& tensors,
                         const std::string& source) {
  std::map<std::string, const Tensor*> by_name;
  for (const NamedTensor& t : tensors) by_name[t.name] = &t.tensor;
  auto take = [&](const std::string& name, const Shape& shape) {
    auto it = by_name.find(name);
    if (it == by_name.end()) throw_file_error(source, "optimizer slot " + name + " is missing");
    if (it->second->shape != shape)
      throw_file_error(source, "optimizer slot " + name + " has shape " + shape_to_string(it->second->shape) +
                                   ", expected " + shape_to_string(shape));
    return *it->second;
  };
  std::vector<RmsPropSlots> loaded;
  for (const NamedTensor& p : params) {
    const SlotNames names = slot_names(p.name, config_.centered);
    RmsPropSlots s;
    s.ms = take(names.ms, p.tensor.shape);
    if (config_.centered) s.mg = take(names.mg, p.tensor.shape);
    s.mom = take(names.mom, p.tensor.shape);
    loaded.push_back(std::move(s));
  }
  slots_ = std::move(loaded);
}

}  // namespace unetind
