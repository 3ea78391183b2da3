#include "reference_ops.h"

#include <algorithm>
#include <stdexcept>

namespace unetind::ref {

namespace {
float activate(float v, Activation act) {
  if (act == Activation::Relu) return v > 0 ? v : 0;
  if (act == Activation::LeakyRelu) return v > 0 ? v : kLeakyReluAlpha * v;
  return v;
}
// Derivative of the activation expressed through its output (y > 0 iff x > 0).
float activation_grad(float y, Activation act) {
  if (act == Activation::Relu) return y > 0 ? 1.f : 0.f;
  if (act == Activation::LeakyRelu) return y > 0 ? 1.f : kLeakyReluAlpha;
  return 1.f;
}
}  // namespace

Act conv2d(const Act& x, const Tensor& kernel, const Tensor& bias, Activation act) {
  const int k = static_cast<int>(kernel.shape[0]);
  const int ci_n = static_cast<int>(kernel.shape[2]);
  const int co_n = static_cast<int>(kernel.shape[3]);
  if (ci_n != x.c) throw std::runtime_error("ref conv2d: channel mismatch");
  const int pad = (k - 1) / 2;
  Act y(x.n, x.h, x.w, co_n);
  std::vector<double> acc(co_n);
  for (int b = 0; b < x.n; ++b)
    for (int oy = 0; oy < x.h; ++oy)
      for (int ox = 0; ox < x.w; ++ox) {
        for (int co = 0; co < co_n; ++co) acc[co] = bias.data[co];
        for (int ky = 0; ky < k; ++ky) {
          const int iy = oy + ky - pad;
          if (iy < 0 || iy >= x.h) continue;
          for (int kx = 0; kx < k; ++kx) {
            const int ix = ox + kx - pad;
            if (ix < 0 || ix >= x.w) continue;
            for (int ci = 0; ci < ci_n; ++ci) {
              const double xv = x.at(b, iy, ix, ci);
              const float* kr = &kernel.data[((static_cast<size_t>(ky) * k + kx) * ci_n + ci) * co_n];
              for (int co = 0; co < co_n; ++co) acc[co] += xv * kr[co];
            }
          }
        }
        for (int co = 0; co < co_n; ++co) y.at(b, oy, ox, co) = activate(static_cast<float>(acc[co]), act);
      }
  return y;
}

void conv2d_backward(const Act& x, const Tensor& kernel, const Act& y, Activation act, const Act& dy, Act* dx,
                     Tensor& dkernel, Tensor& dbias) {
  const int k = static_cast<int>(kernel.shape[0]);
  const int ci_n = static_cast<int>(kernel.shape[2]);
  const int co_n = static_cast<int>(kernel.shape[3]);
  const int pad = (k - 1) / 2;
  std::vector<double> dk(kernel.data.size(), 0.0), db(co_n, 0.0);
  std::vector<double> dxv(x.v.size(), 0.0);
  std::vector<double> dz(co_n);
  for (int b = 0; b < x.n; ++b)
    for (int oy = 0; oy < x.h; ++oy)
      for (int ox = 0; ox < x.w; ++ox) {
        for (int co = 0; co < co_n; ++co) {
          dz[co] = static_cast<double>(dy.at(b, oy, ox, co)) * activation_grad(y.at(b, oy, ox, co), act);
          db[co] += dz[co];
        }
        for (int ky = 0; ky < k; ++ky) {
          const int iy = oy + ky - pad;
          if (iy < 0 || iy >= x.h) continue;
          for (int kx = 0; kx < k; ++kx) {
            const int ix = ox + kx - pad;
            if (ix < 0 || ix >= x.w) continue;
            for (int ci = 0; ci < ci_n; ++ci) {
              const size_t kbase = ((static_cast<size_t>(ky) * k + kx) * ci_n + ci) * co_n;
              const double xv = x.at(b, iy, ix, ci);
              double dsum = 0;
              for (int co = 0; co < co_n; ++co) {
                dk[kbase + co] += xv * dz[co];
                dsum += kernel.data[kbase + co] * dz[co];
              }
              dxv[((static_cast<size_t>(b) * x.h + iy) * x.w + ix) * ci_n + ci] += dsum;
            }
          }
        }
      }
  dkernel = Tensor(kernel.shape);
  for (size_t i = 0; i < dk.size(); ++i) dkernel.data[i] = static_cast<float>(dk[i]);
  dbias = Tensor({co_n});
  for (int co = 0; co < co_n; ++co) dbias.data[co] = static_cast<float>(db[co]);
  if (dx) {
    *dx = Act(x.n, x.h, x.w, x.c);
    for (size_t i = 0; i < dxv.size(); ++i) dx->v[i] = static_cast<float>(dxv[i]);
  }
}

Act maxpool2x2(const Act& x) {
  Act y(x.n, x.h / 2, x.w / 2, x.c);
  for (int b = 0; b < x.n; ++b)
    for (int oy = 0; oy < y.h; ++oy)
      for (int ox = 0; ox < y.w; ++ox)
        for (int c = 0; c < x.c; ++c)
          y.at(b, oy, ox, c) = std::max(std::max(x.at(b, 2 * oy, 2 * ox, c), x.at(b, 2 * oy, 2 * ox + 1, c)),
                                        std::max(x.at(b, 2 * oy + 1, 2 * ox, c), x.at(b, 2 * oy + 1, 2 * ox + 1, c)));
  return y;
}

Act maxpool2x2_backward(const Act& x, const Act& dy) {
  Act dx(x.n, x.h, x.w, x.c);
  for (int b = 0; b < x.n; ++b)
    for (int oy = 0; oy < dy.h; ++oy)
      for (int ox = 0; ox < dy.w; ++ox)
        for (int c = 0; c < x.c; ++c) {
          int by = 2 * oy, bx = 2 * ox;
          for (int dyy = 0; dyy < 2; ++dyy)
            for (int dxx = 0; dxx < 2; ++dxx)
              if (x.at(b, 2 * oy + dyy, 2 * ox + dxx, c) > x.at(b, by, bx, c)) {
                by = 2 * oy + dyy;
                bx = 2 * ox + dxx;
              }
          dx.at(b, by, bx, c) += dy.at(b, oy, ox, c);
        }
  return dx;
}

Act upsample2x(const Act& x) {
  Act y(x.n, x.h * 2, x.w * 2, x.c);
  for (int b = 0; b < x.n; ++b)
    for (int oy = 0; oy < y.h; ++oy)
      for (int ox = 0; ox < y.w; ++ox)
        for (int c = 0; c < x.c; ++c) y.at(b, oy, ox, c) = x.at(b, oy / 2, ox / 2, c);
  return y;
}

Act upsample2x_backward(const Act& dy) {
  Act dx(dy.n, dy.h / 2, dy.w / 2, dy.c);
  for (int b = 0; b < dy.n; ++b)
    for (int oy = 0; oy < dy.h; ++oy)
      for (int ox = 0; ox < dy.w; ++ox)
        for (int c = 0; c < dy.c; ++c) dx.at(b, oy / 2, ox / 2, c) += dy.at(b, oy, ox, c);
  return dx;
}

Act concat(const Act& a, const Act& b) {
  Act y(a.n, a.h, a.w, a.c + b.c);
  for (int n = 0; n < a.n; ++n)
    for (int yy = 0; yy < a.h; ++yy)
      for (int xx = 0; xx < a.w; ++xx) {
        for (int c = 0; c < a.c; ++c) y.at(n, yy, xx, c) = a.at(n, yy, xx, c);
        for (int c = 0; c < b.c; ++c) y.at(n, yy, xx, a.c + c) = b.at(n, yy, xx, c);
      }
  return y;
}

void concat_backward(const Act& dy, int channels_a, Act& da, Act& db) {
  da = Act(dy.n, dy.h, dy.w, channels_a);
  db = Act(dy.n, dy.h, dy.w, dy.c - channels_a);
  for (int n = 0; n < dy.n; ++n)
    for (int yy = 0; yy < dy.h; ++yy)
      for (int xx = 0; xx < dy.w; ++xx) {
        for (int c = 0; c < da.c; ++c) da.at(n, yy, xx, c) = dy.at(n, yy, xx, c);
        for (int c = 0; c < db.c; ++c) db.at(n, yy, xx, c) = dy.at(n, yy, xx, channels_a + c);
      }
}

std::vector<Act> forward_nodes(const Graph& graph, const std::vector<NamedTensor>& params, const float* input, int n,
                               int h, int w, const std::function<void(int node, Act&)>& store) {
  std::vector<Act> outs(graph.nodes.size());
  outs[0] = Act(n, h, w, graph.nodes[0].channels);
  std::copy(input, input + outs[0].v.size(), outs[0].v.begin());
  for (size_t i = 1; i < graph.nodes.size(); ++i) {
    const Node& node = graph.nodes[i];
    const Act& in = outs[node.inputs[0]];
    switch (node.kind) {
      case OpKind::Conv2d:
        outs[i] = conv2d(in, params[2 * node.conv].tensor, params[2 * node.conv + 1].tensor,
                         graph.convs[node.conv].activation);
        break;
      case OpKind::MaxPool2x2: outs[i] = maxpool2x2(in); break;
      case OpKind::Upsample2x: outs[i] = upsample2x(in); break;
      case OpKind::Concat: outs[i] = concat(in, outs[node.inputs[1]]); break;
      case OpKind::Input: break;
    }
    if (store) store(static_cast<int>(i), outs[i]);
  }
  return outs;
}

namespace {
void add_into(Act& acc, const Act& g) {
  if (acc.v.empty()) {
    acc = g;
    return;
  }
  for (size_t i = 0; i < acc.v.size(); ++i) acc.v[i] += g.v[i];
}
}  // namespace

std::vector<Tensor> backward_nodes(const Graph& graph, const std::vector<NamedTensor>& params,
                                   const std::vector<Act>& outs, const std::vector<float>& dout,
                                   const std::vector<Act>* multiplicands) {
  const std::vector<Act>& xs = multiplicands ? *multiplicands : outs;
  std::vector<Act> diffs(graph.nodes.size());
  diffs[graph.output] = outs[graph.output];
  diffs[graph.output].v = dout;
  std::vector<Tensor> grads(params.size());
  for (size_t i = graph.nodes.size() - 1; i >= 1; --i) {
    const Node& node = graph.nodes[i];
    const int in = node.inputs[0];
    switch (node.kind) {
      case OpKind::Conv2d: {
        Act dx;
        conv2d_backward(xs[in], params[2 * node.conv].tensor, outs[i], graph.convs[node.conv].activation, diffs[i],
                        in != 0 ? &dx : nullptr, grads[2 * node.conv], grads[2 * node.conv + 1]);
        if (in != 0) add_into(diffs[in], dx);
        break;
      }
      case OpKind::MaxPool2x2: add_into(diffs[in], maxpool2x2_backward(outs[in], diffs[i])); break;
      case OpKind::Upsample2x: add_into(diffs[in], upsample2x_backward(diffs[i])); break;
      case OpKind::Concat: {
        Act da, db;
        concat_backward(diffs[i], outs[in].c, da, db);
        add_into(diffs[in], da);
        add_into(diffs[node.inputs[1]], db);
        break;
      }
      case OpKind::Input: break;
    }
  }
  return grads;
}

std::vector<float> forward_logits(const Graph& graph, const std::vector<NamedTensor>& params, const float* input,
                                  int n, int h, int w) {
  return forward_nodes(graph, params, input, n, h, w)[graph.output].v;
}

std::vector<Tensor> backward_params(const Graph& graph, const std::vector<NamedTensor>& params, const float* input,
                                    int n, int h, int w, const float* dlogits) {
  return backward_nodes(graph, params, forward_nodes(graph, params, input, n, h, w),
                        std::vector<float>(dlogits, dlogits + static_cast<size_t>(n) * h * w));
}

}  // namespace unetind::ref
