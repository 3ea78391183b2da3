// The optimiser of NVIDIA's UNet-Industrial (SPEC.md section 2): TF1's
// tf.train.RMSPropOptimizer (centered by default) under a staircase
// exponential learning-rate decay.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "unetind/safetensors.h"
#include "unetind/tensor.h"

namespace unetind {

// tf.train.exponential_decay(base, step, decay_steps, factor, staircase=True):
// base * factor^floor(step / decay_steps).
struct LrSchedule {
  float base = 1e-4f;
  float factor = 0.8f;
  int64_t decay_steps = 500;

  float at(int64_t step) const;
};

struct RmsPropConfig {
  float decay = 0.9f;  // rho
  float momentum = 0.8f;
  float epsilon = 1e-10f;
  bool centered = true;

  bool operator==(const RmsPropConfig&) const = default;
};

// One parameter's slots: mean square, mean gradient (centred only, else
// empty) and momentum, each of the parameter's shape.
struct RmsPropSlots {
  Tensor ms, mg, mom;
};

// Per value, in float32 and in the order of TF's ApplyCenteredRMSProp kernel:
//   ms  += (g^2 - ms) * (1 - rho)
//   mg  += (g - mg) * (1 - rho)                  (centered only)
//   mom  = momentum * mom + lr * g / sqrt(ms - mg^2 + eps)   (mg = 0 if not centered)
//   w   -= mom
// Slots start as TF1 creates them: ms = 1 (ones_initializer, not 0), mg = 0,
// mom = 0. The update is elementwise, so it is bitwise the same for any
// thread count.
class RmsProp {
 public:
  explicit RmsProp(RmsPropConfig config = {});

  const RmsPropConfig& config() const { return config_; }

  // grads: same order and shapes as params. The slots are created on the
  // first call (or by load_state) and must keep those shapes.
  void step(std::vector<NamedTensor>& params, const std::vector<Tensor>& grads, float lr);

  // The slots under TF1's checkpoint names. TF names a slot variable
  // "<param>/<optimizer name>" and numbers repeats in creation order
  // (rms, then mg if centered, then momentum):
  //   centered:     <param>/RMSProp (ms), <param>/RMSProp_1 (mg), <param>/RMSProp_2 (mom)
  //   not centered: <param>/RMSProp (ms), <param>/RMSProp_1 (mom)
  // Before the first step the slots are reported at their initial values.
  std::vector<NamedTensor> state(const std::vector<NamedTensor>& params) const;

  // Takes the slots of every parameter from `tensors` (which may hold other
  // tensors too), by the names above; a missing slot or a wrong shape is an
  // Error naming `source` and the tensor.
  void load_state(const std::vector<NamedTensor>& params, const std::vector<NamedTensor>& tensors,
                  const std::string& source);

  // The same slots by parameter (parameters order), for a backend that keeps
  // them in its own memory; set_slots takes them back (shapes unchecked
  // until the next step or state()).
  std::vector<RmsPropSlots> slots(const std::vector<NamedTensor>& params) const;
  void set_slots(std::vector<RmsPropSlots> slots) { slots_ = std::move(slots); }

 private:
  RmsPropSlots initial_slots(const Shape& shape) const;

  RmsPropConfig config_;
  std::vector<RmsPropSlots> slots_;
};

}  // namespace unetind
