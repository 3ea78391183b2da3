// One entry point per op family and direction, as in backend/cpu/ops.h.
// Activations are fp32 NHWC device arrays; every call is enqueued on
// ctx.stream. Backward functions take `accumulate`: false writes the input
// gradient, true adds to it (a skip tensor feeds both a pool and a concat).
#pragma once
#include "backend/cuda/common.h"
#include "train/loss_terms.h"
#include "train/rmsprop_step.h"
#include "unetind/model.h"

namespace unetind::cuda {

// --- conv2d.cu: convolution + bias + activation (SAME, stride 1; an even
// kernel pads (k-1)/2 before and the rest after, as TF does, through a
// zero-bordered copy of the input because cuDNN pads symmetrically).
struct ConvLayer {
  ConvSpec spec;
  int batch = 0, height = 0, width = 0;  // input and output size
  int pad_before = 0, padded_height = 0, padded_width = 0;
  TensorDesc x_desc, y_desc, bias_desc;  // x_desc: the (padded) input cuDNN sees
  FilterDesc w_desc;
  ConvDesc conv_desc;
  cudnnConvolutionFwdAlgo_t fwd_algo{};
  cudnnConvolutionBwdDataAlgo_t bwd_data_algo{};
  cudnnConvolutionBwdFilterAlgo_t bwd_filter_algo{};
  // Arena pointers, set by the executor. weights are KRSC (out, kh, kw, in).
  float* weights = nullptr;
  float* bias = nullptr;
  float* diff_weights = nullptr;
  float* diff_bias = nullptr;
  float* padded = nullptr;       // even kernels: the input inside a zero border
  float* diff_padded = nullptr;  // even kernels, training: d(loss)/d(padded)
  float* diff_pre = nullptr;     // training with an activation: d(loss)/d(pre-activation)

  bool needs_padding() const { return spec.kernel % 2 == 0; }
  int64_t padded_count() const { return int64_t(batch) * padded_height * padded_width * spec.in_channels; }
  int64_t output_count() const { return int64_t(batch) * height * width * spec.out_channels; }
};

// Descriptors and the algorithm of each direction, chosen once for this
// shape; returns the workspace bytes the chosen algorithms need.
size_t conv_setup(const Context& ctx, ConvLayer& layer, int batch, int height, int width, bool training);
void conv_forward(const Context& ctx, const ConvLayer& layer, const float* src, float* dst);
// diff_dst is d(loss)/d(activation output), dst the forward output. Writes the
// parameter gradients; diff_src (null for the first convolution) gets
// d(loss)/d(src), written or accumulated.
void conv_backward(const Context& ctx, const ConvLayer& layer, const float* src, const float* dst,
                   const float* diff_dst, float* diff_src, bool accumulate);

// --- pooling.cu: max pooling 2x2, stride 2 (cuDNN).
struct PoolLayer {
  PoolDesc pool_desc;
  TensorDesc x_desc, y_desc;
};
void pool_setup(PoolLayer& layer, int batch, int height, int width, int channels);  // input size
void pool_forward(const Context& ctx, const PoolLayer& layer, const float* src, float* dst);
void pool_backward(const Context& ctx, const PoolLayer& layer, const float* src, const float* dst,
                   const float* diff_dst, float* diff_src, bool accumulate);

// --- resampling.cu: nearest x2, out[i][j] = in[i/2][j/2]; backward sums 2x2.
// Sizes are the input's.
void upsample_forward(const Context& ctx, const float* src, float* dst, int batch, int height, int width,
                      int channels);
void upsample_backward(const Context& ctx, const float* diff_dst, float* diff_src, int batch, int height, int width,
                       int channels, bool accumulate);

// --- concat.cu: channels [a, b] of `pixels` pixels; backward splits (a null
// diff_a or diff_b is skipped: the model input needs no gradient).
void concat_forward(const Context& ctx, const float* a, const float* b, float* dst, int64_t pixels, int channels_a,
                    int channels_b);
void concat_backward(const Context& ctx, const float* diff_dst, float* diff_a, float* diff_b, int64_t pixels,
                     int channels_a, int channels_b, bool accumulate_a, bool accumulate_b);

// --- eltwise.cu: bias + activation in place after a convolution, its
// backward from the saved output, and the final sigmoid.
void bias_activation_forward(const Context& ctx, float* data, const float* bias, int64_t pixels, int channels,
                             Activation act);
void activation_backward(const Context& ctx, const float* dst, const float* diff_dst, float* diff_pre, int64_t count,
                         Activation act);
void sigmoid_forward(const Context& ctx, const float* src, float* dst, int64_t count);

// --- training.cu: the loss with its gradient, and weight decay with the
// centred-RMSProp update, on the device (the arithmetic of loss.cpp and
// optimizer.cpp, shared through train/loss_terms.h and train/rmsprop_step.h;
// compiled without FMA contraction, so that it rounds as the host code does).
// Sums are taken per block over fixed ranges and added in block order: the
// same bits on every run.
constexpr int kReductionBlocks = 1024;
// The device scratch a reduction needs: kReductionBlocks partial sums.
constexpr int64_t kReductionScratchBytes = kReductionBlocks * int64_t(sizeof(loss_terms::Sums));

// What the loss kernels leave on the device for the update and the host.
struct LossState {
  loss_terms::Coefficients coefficients;  // the loss, the branch taken and the gradient's factors
  double sum_of_squares;                  // of the parameters before the update: weight decay's l2
  // The reconstruction loss the update goes by (after an all-reduce: the
  // ranks' mean): where it is not finite, the update leaves every value.
  float gate;
};

// logits, labels: n values; writes dlogits and state->coefficients and
// state->gate. scratch: kReductionScratchBytes.
void loss_forward_backward(const Context& ctx, LossKind kind, const float* logits, const float* labels, int64_t n,
                           float* dlogits, void* scratch, LossState* state);
// state->sum_of_squares of `values`.
void sum_of_squares(const Context& ctx, const float* values, int64_t n, void* scratch, LossState* state);
// Per value: g += weight_decay * w (TF's l2 gradient), then RMSProp on w, ms,
// mg (centred only; may be null otherwise) and mom, unless the gate says no.
void weight_decay_rmsprop(const Context& ctx, float* w, const float* g, float* ms, float* mg, float* mom, int64_t n,
                          const RmsPropStep& step, bool centered, float weight_decay, const LossState* state);

}  // namespace unetind::cuda
