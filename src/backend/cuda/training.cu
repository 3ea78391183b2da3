#include "backend/cuda/ops.h"

namespace unetind::cuda {

namespace {

constexpr int kThreads = 256;

struct SumOfSquares {
  double value;
  __device__ void add(const SumOfSquares& o) { value += o.value; }
};

// What one value adds to a reduction: the loss sums, or its square.
struct LossValue {
  const float* logits;
  const float* labels;
  __device__ void operator()(loss_terms::Sums& s, int64_t i) const { loss_terms::add_value(s, logits[i], labels[i]); }
};
struct SquareValue {
  const float* values;
  __device__ void operator()(SumOfSquares& s, int64_t i) const { s.value += double(values[i]) * values[i]; }
};

// Block b sums [b * per_block, (b + 1) * per_block) with a fixed thread
// mapping and a fixed tree: partial[b].
template <typename T, typename Value>
__global__ void partial_sums_kernel(int64_t n, int64_t per_block, Value value, T* partial) {
  __shared__ T shared[kThreads];
  T s{};
  const int64_t begin = blockIdx.x * per_block;
  const int64_t end = begin + per_block < n ? begin + per_block : n;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) value(s, i);
  shared[threadIdx.x] = s;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) shared[threadIdx.x].add(shared[threadIdx.x + stride]);
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[blockIdx.x] = shared[0];
}

template <typename T>
__device__ T total_of(const T* partial, int blocks) {
  T total{};
  for (int b = 0; b < blocks; ++b) total.add(partial[b]);
  return total;
}

__global__ void loss_finish_kernel(const loss_terms::Sums* partial, int blocks, LossKind kind, int64_t n,
                                   LossState* state) {
  const loss_terms::Coefficients c = loss_terms::coefficients(kind, total_of(partial, blocks), n);
  state->coefficients = c;
  state->gate = static_cast<float>(c.value);
}

__global__ void squares_finish_kernel(const SumOfSquares* partial, int blocks, LossState* state) {
  state->sum_of_squares = total_of(partial, blocks).value;
}

__global__ void loss_gradient_kernel(const float* logits, const float* labels, int64_t n, const LossState* state,
                                     float* dlogits) {
  const loss_terms::Coefficients c = state->coefficients;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const double p = loss_terms::sigmoid_terms(logits[i]).p;
    dlogits[i] = static_cast<float>(loss_terms::gradient(c, p, static_cast<double>(labels[i])));
  }
}

template <bool kCentered>
__global__ void rmsprop_kernel(float* w, const float* g, float* ms, float* mg, float* mom, int64_t n,
                               RmsPropStep step, float weight_decay, const LossState* state) {
  if (!isfinite(state->gate)) return;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float gi = g[i] + weight_decay * w[i];
    step.apply<kCentered>(w[i], gi, ms[i], kCentered ? &mg[i] : nullptr, mom[i]);
  }
}

// Partial sums of n values over at most kReductionBlocks blocks; returns the
// block count.
template <typename T, typename Value>
int partial_sums(const Context& ctx, int64_t n, Value value, void* scratch) {
  static_assert(sizeof(T) <= sizeof(loss_terms::Sums), "the reduction scratch holds Sums");
  const int64_t wanted = (n + kThreads - 1) / kThreads;
  const int blocks = static_cast<int>(wanted < kReductionBlocks ? (wanted > 0 ? wanted : 1) : kReductionBlocks);
  const int64_t per_block = (n + blocks - 1) / blocks;
  partial_sums_kernel<T><<<blocks, kThreads, 0, ctx.stream>>>(n, per_block, value, static_cast<T*>(scratch));
  UNETIND_CUDA_CHECK_LAUNCH();
  return blocks;
}

}  // namespace

void loss_forward_backward(const Context& ctx, LossKind kind, const float* logits, const float* labels, int64_t n,
                           float* dlogits, void* scratch, LossState* state) {
  if (n <= 0) throw Error("cuda backend: loss of an empty batch");
  const int blocks = partial_sums<loss_terms::Sums>(ctx, n, LossValue{logits, labels}, scratch);
  loss_finish_kernel<<<1, 1, 0, ctx.stream>>>(static_cast<const loss_terms::Sums*>(scratch), blocks, kind, n, state);
  UNETIND_CUDA_CHECK_LAUNCH();
  loss_gradient_kernel<<<grid_for(n), kThreads, 0, ctx.stream>>>(logits, labels, n, state, dlogits);
  UNETIND_CUDA_CHECK_LAUNCH();
}

void sum_of_squares(const Context& ctx, const float* values, int64_t n, void* scratch, LossState* state) {
  const int blocks = partial_sums<SumOfSquares>(ctx, n, SquareValue{values}, scratch);
  squares_finish_kernel<<<1, 1, 0, ctx.stream>>>(static_cast<const SumOfSquares*>(scratch), blocks, state);
  UNETIND_CUDA_CHECK_LAUNCH();
}

void weight_decay_rmsprop(const Context& ctx, float* w, const float* g, float* ms, float* mg, float* mom, int64_t n,
                          const RmsPropStep& step, bool centered, float weight_decay, const LossState* state) {
  if (centered)
    rmsprop_kernel<true><<<grid_for(n), kThreads, 0, ctx.stream>>>(w, g, ms, mg, mom, n, step, weight_decay, state);
  else
    rmsprop_kernel<false><<<grid_for(n), kThreads, 0, ctx.stream>>>(w, g, ms, mg, mom, n, step, weight_decay, state);
  UNETIND_CUDA_CHECK_LAUNCH();
}

}  // namespace unetind::cuda
