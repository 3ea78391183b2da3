// Kernel initialisers as TensorFlow/Keras define them (biases are zero).
// Random numbers come from our own transforms of mt19937_64, not from
// std::*_distribution, whose output differs between standard libraries: a
// seed must give the same weights everywhere.
#include <cmath>

#include "unetind/error.h"
#include "unetind/model.h"

namespace unetind {

namespace {

class Rng {
 public:
  explicit Rng(uint64_t seed) : gen_(seed) {}
  double uniform() { return (gen_() >> 11) * 0x1.0p-53; }  // [0, 1)
  double normal() {
    // Box-Muller; the second value is thrown away to keep the stream simple.
    double u1 = 1.0 - uniform();
    double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  }
  double truncated_normal() {  // resampled outside 2 standard deviations, as TF
    for (;;) {
      double v = normal();
      if (std::fabs(v) <= 2.0) return v;
    }
  }

 private:
  std::mt19937_64 gen_;
};

// TF's variance_scaling divides by this so that the truncated normal has the
// requested variance (stddev of a unit normal truncated at +-2).
constexpr double kTruncatedNormalStddev = 0.87962566103423978;

// Orthogonal init (Saxe et al., as tf.keras.initializers.Orthogonal): a
// rows x cols matrix with orthonormal columns (or rows, if rows < cols), from
// the QR decomposition of a Gaussian matrix with the signs of R's diagonal
// folded into Q. Modified Gram-Schmidt in double gives Q and diag(R).
std::vector<float> orthogonal(int64_t rows, int64_t cols, Rng& rng) {
  const bool transpose = rows < cols;
  const int64_t m = transpose ? cols : rows;  // long side
  const int64_t n = transpose ? rows : cols;  // short side
  std::vector<double> a(m * n);               // column-major m x n
  for (double& v : a) v = rng.normal();
  for (int64_t j = 0; j < n; ++j) {
    double* cj = &a[j * m];
    for (int64_t k = 0; k < j; ++k) {
      const double* ck = &a[k * m];
      double dot = 0;
      for (int64_t i = 0; i < m; ++i) dot += ck[i] * cj[i];
      for (int64_t i = 0; i < m; ++i) cj[i] -= dot * ck[i];
    }
    double norm = 0;
    for (int64_t i = 0; i < m; ++i) norm += cj[i] * cj[i];
    norm = std::sqrt(norm);
    // diag(R) = norm > 0, so no sign flip is needed after Gram-Schmidt.
    for (int64_t i = 0; i < m; ++i) cj[i] /= norm;
  }
  std::vector<float> out(rows * cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      out[r * cols + c] = static_cast<float>(transpose ? a[r * m + c] : a[c * m + r]);
  return out;
}

Tensor init_kernel(const ConvSpec& c, Initializer init, Rng& rng) {
  Tensor k({c.kernel, c.kernel, c.in_channels, c.out_channels});
  const double receptive = static_cast<double>(c.kernel) * c.kernel;
  const double fan_in = receptive * c.in_channels;
  const double fan_out = receptive * c.out_channels;
  const double fan_avg = (fan_in + fan_out) / 2.0;
  switch (init) {
    case Initializer::HeNormal:
    case Initializer::GlorotNormal: {
      const double fan = init == Initializer::HeNormal ? fan_in : fan_avg;
      const double scale = init == Initializer::HeNormal ? 2.0 : 1.0;
      const double stddev = std::sqrt(scale / fan) / kTruncatedNormalStddev;
      for (float& v : k.data) v = static_cast<float>(stddev * rng.truncated_normal());
      break;
    }
    case Initializer::HeUniform:
    case Initializer::GlorotUniform: {
      const double limit = init == Initializer::HeUniform ? std::sqrt(6.0 / fan_in) : std::sqrt(3.0 / fan_avg);
      for (float& v : k.data) v = static_cast<float>(limit * (2.0 * rng.uniform() - 1.0));
      break;
    }
    case Initializer::Orthogonal:
      // HWIO flattened to (kh*kw*in) x out, as Keras does.
      k.data = orthogonal(static_cast<int64_t>(receptive) * c.in_channels, c.out_channels, rng);
      break;
  }
  return k;
}

}  // namespace

Parameters init_parameters(const ModelConfig& config, Initializer init, uint64_t seed) {
  Graph graph = build_graph(config);
  Rng rng(seed);
  Parameters p;
  p.config = config;
  for (const ConvSpec& c : graph.convs) {
    p.tensors.push_back({c.kernel_name(), init_kernel(c, init, rng)});
    p.tensors.push_back({c.bias_name(), Tensor({c.out_channels})});
  }
  return p;
}

}  // namespace unetind
