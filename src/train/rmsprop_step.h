// The per-value centred RMSProp update of optimizer.h (TF's
// ApplyCenteredRMSProp order, float32), for RmsProp::step on the host and the
// CUDA backend's fused update kernel alike.
#pragma once
#include <math.h>

#include "train/host_device.h"
#include "unetind/optimizer.h"

namespace unetind {

struct RmsPropStep {
  float one_minus_rho, momentum, epsilon, lr;

  RmsPropStep(const RmsPropConfig& config, float learning_rate)
      : one_minus_rho(1.0f - config.decay), momentum(config.momentum), epsilon(config.epsilon), lr(learning_rate) {}

  // mg is only touched when centred: the loops are instantiated for each
  // case, so the test is not in them.
  template <bool kCentered>
  UNETIND_HOST_DEVICE void apply(float& w, float g, float& ms, float* mg, float& mom) const {
    ms += (g * g - ms) * one_minus_rho;
    float denom = ms;
    if constexpr (kCentered) {
      *mg += (g - *mg) * one_minus_rho;
      denom -= *mg * *mg;
    }
    mom = mom * momentum + (g * lr) / sqrtf(denom + epsilon);
    w -= mom;
  }
};

}  // namespace unetind
