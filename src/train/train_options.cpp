// check_train_options: a training run's options, refused before anything is
// created when they cannot make a sensible run (a NaN or negative learning
// rate trains to garbage with exit 0; a batch no machine can hold fails deep
// in an allocation).
#include <cmath>
#include <cstdio>

#include "unetind/error.h"
#include "unetind/trainer.h"

namespace unetind {

namespace {

void check_at_least(int64_t value, int64_t least, const char* flag) {
  if (value < least)
    throw Error(std::string(flag) + " must be at least " + std::to_string(least) + ", not " + std::to_string(value));
}

// `low` and `high` as inclusive or not; NaN fails every comparison.
void check_range(double value, double low, bool low_inclusive, double high, bool high_inclusive, const char* flag) {
  const bool above = low_inclusive ? value >= low : value > low;
  const bool below = high_inclusive ? value <= high : value < high;
  if (!above || !below) {
    char text[128];
    std::snprintf(text, sizeof text, " must be a number in %s%g, %g%s, not %g", low_inclusive ? "[" : "(", low, high,
                  high_inclusive ? "]" : ")", value);
    throw Error(flag + std::string(text));
  }
}

}  // namespace

void check_train_options(const TrainOptions& o) {
  check_at_least(o.steps, 1, "--steps");
  check_at_least(o.batch, 1, "--batch");
  check_at_least(o.checkpoint_every, 1, "--checkpoint-every");
  check_at_least(o.display_every, 1, "--display-every");
  check_at_least(o.eval_every, 0, "--eval-every");
  check_at_least(o.lr.decay_steps, 1, "--lr-decay-steps");
  check_at_least(o.loader_threads, 1, "--loader-threads");
  if (o.image_size < 16 || o.image_size % 16 != 0)
    throw Error("--image-size must be a positive multiple of 16 (the model pools 4 times), not " +
                std::to_string(o.image_size));
  if (o.threads < 0 || o.threads > available_cpus())
    throw Error("--threads must be from 0 (one per core) to " + std::to_string(available_cpus()) +
                ", the CPUs this process may use, not " + std::to_string(o.threads));
  const double inf = INFINITY;
  check_range(o.lr.base, 0, false, inf, false, "--lr");
  check_range(o.lr.factor, 0, false, 1, true, "--lr-decay-factor");
  check_range(o.rmsprop.decay, 0, true, 1, false, "--rmsprop-decay");
  check_range(o.rmsprop.momentum, 0, true, 1, false, "--rmsprop-momentum");
  check_range(o.rmsprop.epsilon, 0, false, inf, false, "RMSProp's epsilon");
  check_range(o.weight_decay, 0, true, inf, false, "--weight-decay");

  // The training executor's activations, and the loader's batches of images
  // and masks (the prefetched ones and the one in use).
  const ExecConfig exec{o.batch, o.image_size, o.image_size, true, o.precision, o.conv_algorithm};
  const double loader = (kTrainPrefetch + 1) * 2.0 * o.batch * o.image_size * o.image_size * sizeof(float);
  check_fits_in_memory(activation_bytes_lower_bound(build_graph(o.model), exec) + loader,
                       "training with --batch " + std::to_string(o.batch) + " at --image-size " +
                           std::to_string(o.image_size));
}

}  // namespace unetind
