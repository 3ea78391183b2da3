// The ten synthetic textures and their defects. Every texture is built from
// a few cheap pieces: periodic white noise, separable box blurs (three passes
// approximate a Gaussian), sinusoids and polar coordinates. Lengths are given
// for a 512-pixel image and scaled to the requested size; fine detail keeps a
// minimum width in pixels so small images stay textured.
#include <algorithm>
#include <cmath>
#include <numbers>

#include "data/rng.h"
#include "unetind/error.h"
#include "unetind/synth.h"

namespace unetind {

namespace {

using data::Rng;
constexpr double kPi = std::numbers::pi;
constexpr uint64_t kImageSalt = 0x53594e5448494dULL;  // "SYNTHIM"

struct Field {
  int w = 0;
  int h = 0;
  std::vector<float> v;
  Field(int width, int height, float fill = 0.0f)
      : w(width), h(height), v(static_cast<size_t>(width) * height, fill) {}
  float& at(int x, int y) { return v[static_cast<size_t>(y) * w + x]; }
  float at(int x, int y) const { return v[static_cast<size_t>(y) * w + x]; }
  // Bilinear, wrapping around: the noise fields are periodic.
  float sample(double x, double y) const {
    const double fx = std::floor(x), fy = std::floor(y);
    const double tx = x - fx, ty = y - fy;
    auto wrap = [](long i, int n) { return static_cast<int>(((i % n) + n) % n); };
    const int x0 = wrap(static_cast<long>(fx), w), x1 = (x0 + 1) % w;
    const int y0 = wrap(static_cast<long>(fy), h), y1 = (y0 + 1) % h;
    return static_cast<float>((1 - ty) * ((1 - tx) * at(x0, y0) + tx * at(x1, y0)) +
                              ty * ((1 - tx) * at(x0, y1) + tx * at(x1, y1)));
  }
};

// One pass of a wrapping box blur of radius r along x, then along y. Running
// sums make the cost independent of r; the y pass works on whole rows at once
// to stay cache friendly.
void box_x(Field& f, int r, std::vector<float>& ext) {
  const int n = f.w;
  ext.resize(static_cast<size_t>(n + 2 * r + 1));
  const float scale = 1.0f / static_cast<float>(2 * r + 1);
  for (int y = 0; y < f.h; ++y) {
    float* row = &f.at(0, y);
    for (int i = 0; i < n + 2 * r + 1; ++i) ext[static_cast<size_t>(i)] = row[((i - r) % n + n) % n];
    float sum = 0;
    for (int i = 0; i < 2 * r + 1; ++i) sum += ext[static_cast<size_t>(i)];
    for (int x = 0; x < n; ++x) {
      row[x] = sum * scale;
      sum += ext[static_cast<size_t>(x + 2 * r + 1)] - ext[static_cast<size_t>(x)];
    }
  }
}

void box_y(Field& f, int r, std::vector<float>& src) {
  const int n = f.h, w = f.w;
  src = f.v;
  const float scale = 1.0f / static_cast<float>(2 * r + 1);
  std::vector<float> sum(static_cast<size_t>(w), 0.0f);
  auto row = [&](int y) { return &src[static_cast<size_t>(((y % n) + n) % n) * w]; };
  for (int d = -r; d <= r; ++d) {
    const float* p = row(d);
    for (int x = 0; x < w; ++x) sum[static_cast<size_t>(x)] += p[x];
  }
  for (int y = 0; y < n; ++y) {
    float* out = &f.at(0, y);
    const float* add = row(y + r + 1);
    const float* sub = row(y - r);
    for (int x = 0; x < w; ++x) {
      out[x] = sum[static_cast<size_t>(x)] * scale;
      sum[static_cast<size_t>(x)] += add[x] - sub[x];
    }
  }
}

// Three box passes per axis, radii in pixels (0 leaves that axis alone).
void blur(Field& f, int rx, int ry) {
  std::vector<float> tmp;
  rx = std::min(rx, f.w / 2 - 1);
  ry = std::min(ry, f.h / 2 - 1);
  for (int pass = 0; pass < 3; ++pass) {
    if (rx > 0) box_x(f, rx, tmp);
    if (ry > 0) box_y(f, ry, tmp);
  }
}

// Zero mean, unit standard deviation.
void normalize(Field& f) {
  double sum = 0, sq = 0;
  for (float x : f.v) sum += x;
  const double mean = sum / static_cast<double>(f.v.size());
  for (float x : f.v) sq += (x - mean) * (x - mean);
  const double inv = 1.0 / std::max(1e-12, std::sqrt(sq / static_cast<double>(f.v.size())));
  for (float& x : f.v) x = static_cast<float>((x - mean) * inv);
}

Field white_noise(int w, int h, Rng& rng) {
  Field f(w, h);
  for (float& x : f.v) x = static_cast<float>(rng.uniform(-1.0, 1.0));
  return f;
}

// Blurred noise with features about rx x ry pixels, held at a resolution
// reduced by (kx, ky) where the blur allows it: the same look for a fraction
// of the work. at() samples it in full-resolution coordinates.
struct Noise {
  Field low;
  int kx, ky;
  float at(double x, double y) const { return low.sample((x + 0.5) / kx - 0.5, (y + 0.5) / ky - 0.5); }
};

Noise make_noise(int w, int h, int rx, int ry, Rng& rng) {
  const int kx = std::max(1, rx / 4), ky = std::max(1, ry / 4);
  Noise n{white_noise((w + kx - 1) / kx, (h + ky - 1) / ky, rng), kx, ky};
  blur(n.low, (rx + kx / 2) / kx, (ry + ky / 2) / ky);
  return n;
}

// Normalised noise with features about rx x ry pixels, at full resolution.
Field smooth_noise(int w, int h, int rx, int ry, Rng& rng) {
  const Noise n = make_noise(w, h, rx, ry, rng);
  Field f(w, h);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) f.at(x, y) = n.at(x, y);
  normalize(f);
  return f;
}

double smoothstep(double e0, double e1, double x) {
  const double t = std::clamp((x - e0) / (e1 - e0), 0.0, 1.0);
  return t * t * (3 - 2 * t);
}

struct Ellipse {
  double cx = 0, cy = 0;
  double a = 1, b = 1;  // semi-axes along angle and across it
  double angle = 0;     // radians
  // < 1 inside, 1 on the border.
  double radius(double x, double y) const {
    const double dx = x - cx, dy = y - cy;
    const double c = std::cos(angle), s = std::sin(angle);
    const double u = (dx * c + dy * s) / a, v = (-dx * s + dy * c) / b;
    return std::sqrt(u * u + v * v);
  }
  Ellipse grown(double factor, double margin) const { return {cx, cy, a * factor + margin, b * factor + margin, angle}; }
};

// The tightest ellipse aligned with the principal axis of `pts`, grown so a
// weak label covers the whole defect with room around it.
Ellipse ellipse_around(const std::vector<std::pair<double, double>>& pts, double margin) {
  double mx = 0, my = 0;
  for (auto [x, y] : pts) mx += x, my += y;
  mx /= static_cast<double>(pts.size());
  my /= static_cast<double>(pts.size());
  double sxx = 0, syy = 0, sxy = 0;
  for (auto [x, y] : pts) {
    sxx += (x - mx) * (x - mx);
    syy += (y - my) * (y - my);
    sxy += (x - mx) * (y - my);
  }
  const double angle = 0.5 * std::atan2(2 * sxy, sxx - syy);
  const double c = std::cos(angle), s = std::sin(angle);
  double u0 = 1e30, u1 = -1e30, v0 = 1e30, v1 = -1e30;
  for (auto [x, y] : pts) {
    const double u = (x - mx) * c + (y - my) * s, v = -(x - mx) * s + (y - my) * c;
    u0 = std::min(u0, u), u1 = std::max(u1, u), v0 = std::min(v0, v), v1 = std::max(v1, v);
  }
  const double uc = (u0 + u1) / 2, vc = (v0 + v1) / 2;
  // A box of half-sides (hu, hv) fits in the ellipse with semi-axes sqrt(2) times larger.
  const double hu = (u1 - u0) / 2, hv = (v1 - v0) / 2;
  return {mx + uc * c - vc * s, my + uc * s + vc * c, hu * std::sqrt(2.0) + margin,
          std::max(hv * std::sqrt(2.0) + margin, 0.3 * (hu + margin)), angle};
}

// One image in the making: pixel values (any range; clamped at the end), its
// scale, and the label ellipse of its defect.
struct Canvas {
  int s;
  double u;  // this size / 512
  Field img;
  std::vector<Ellipse> labels;
  explicit Canvas(int size) : s(size), u(size / 512.0), img(size, size) {}
  // A length given for 512 pixels, at least `min_px` pixels.
  double len(double at512, double min_px = 0.0) const { return std::max(min_px, at512 * u); }
  // Defects shrink more slowly than the texture (by sqrt(u)) so that they
  // stay learnable on small images.
  double dlen(double at512, double min_px = 0.0) const { return std::max(min_px, at512 * std::sqrt(u)); }
  int radius(double at512, int min_px = 0) const {
    return std::max(min_px, static_cast<int>(std::lround(at512 * u)));
  }
  // A spatial frequency in cycles per 512-pixel length, kept below Nyquist.
  double freq(double cycles_per_px_at512) const { return std::min(cycles_per_px_at512 / u, 0.42); }
  // A place for a defect, away from the border.
  std::pair<double, double> spot(Rng& rng) const { return {rng.uniform(0.18, 0.82) * s, rng.uniform(0.18, 0.82) * s}; }

  // Blends `value(x, y)` into the image with weight w(x, y) * strength, over
  // the box around e where the weight is non-zero.
  template <typename Weight, typename Value>
  void blend(const Ellipse& e, double reach, Weight weight, Value value) {
    const double r = std::max(e.a, e.b) * reach;
    const int x0 = std::max(0, static_cast<int>(e.cx - r)), x1 = std::min(s - 1, static_cast<int>(e.cx + r) + 1);
    const int y0 = std::max(0, static_cast<int>(e.cy - r)), y1 = std::min(s - 1, static_cast<int>(e.cy + r) + 1);
    for (int y = y0; y <= y1; ++y)
      for (int x = x0; x <= x1; ++x) {
        const double w = weight(x + 0.5, y + 0.5);
        if (w <= 0) continue;
        float& p = img.at(x, y);
        p = static_cast<float>((1 - w) * p + w * value(x, y, p));
      }
  }

  // An anti-aliased stroke along `pts`, pulled toward `value` with `strength`.
  void stroke(const std::vector<std::pair<double, double>>& pts, double width, double value, double strength) {
    Field cover(s, s);
    for (size_t i = 0; i + 1 < pts.size(); ++i) {
      const auto [ax, ay] = pts[i];
      const auto [bx, by] = pts[i + 1];
      const double pad = width + 2;
      const int x0 = std::max(0, static_cast<int>(std::min(ax, bx) - pad));
      const int x1 = std::min(s - 1, static_cast<int>(std::max(ax, bx) + pad));
      const int y0 = std::max(0, static_cast<int>(std::min(ay, by) - pad));
      const int y1 = std::min(s - 1, static_cast<int>(std::max(ay, by) + pad));
      const double dx = bx - ax, dy = by - ay, l2 = std::max(1e-9, dx * dx + dy * dy);
      for (int y = y0; y <= y1; ++y)
        for (int x = x0; x <= x1; ++x) {
          const double px = x + 0.5 - ax, py = y + 0.5 - ay;
          const double t = std::clamp((px * dx + py * dy) / l2, 0.0, 1.0);
          const double d = std::hypot(px - t * dx, py - t * dy);
          const double c = std::clamp(width / 2 + 0.5 - d, 0.0, 1.0);
          cover.at(x, y) = std::max(cover.at(x, y), static_cast<float>(c));
        }
    }
    for (size_t i = 0; i < img.v.size(); ++i) {
      const double w = cover.v[i] * strength;
      if (w > 0) img.v[i] = static_cast<float>((1 - w) * img.v[i] + w * value);
    }
    labels.push_back(ellipse_around(pts, dlen(10, 4) + width));
  }

  // A quadratic Bezier through a random spot, `length` long at angle `a`,
  // bending by up to `bend` of its length.
  std::vector<std::pair<double, double>> curve(Rng& rng, double length, double a, double bend) const {
    const auto [cx, cy] = spot(rng);
    const double hx = std::cos(a) * length / 2, hy = std::sin(a) * length / 2;
    const double k = rng.uniform(-bend, bend) * length;
    const double mx = cx - std::sin(a) * k, my = cy + std::cos(a) * k;  // control point
    std::vector<std::pair<double, double>> pts;
    const int n = 24;
    for (int i = 0; i <= n; ++i) {
      const double t = static_cast<double>(i) / n;
      const double x0 = cx - hx, y0 = cy - hy, x2 = cx + hx, y2 = cy + hy;
      pts.emplace_back((1 - t) * (1 - t) * x0 + 2 * (1 - t) * t * mx + t * t * x2,
                       (1 - t) * (1 - t) * y0 + 2 * (1 - t) * t * my + t * t * y2);
    }
    return pts;
  }

  // A random region for area defects.
  Ellipse region(Rng& rng, double a_lo, double a_hi, double min_ratio) const {
    const auto [cx, cy] = spot(rng);
    const double a = dlen(rng.uniform(a_lo, a_hi), 3);
    return {cx, cy, a, a * rng.uniform(min_ratio, 1.0), rng.uniform(0, kPi)};
  }
};

// Soft-edged weight of an ellipse: 1 inside radius `inner`, 0 beyond 1.
auto soft(const Ellipse& e, double inner = 0.6) {
  return [e, inner](double x, double y) { return 1.0 - smoothstep(inner, 1.0, e.radius(x, y)); };
}

// ---------------------------------------------------------------- classes

// 1: fine interference pattern; defect: a smooth smudge where it vanishes.
void class1(Canvas& c, Rng& rng, bool defective) {
  const int s = c.s;
  const Field warp = smooth_noise(s, s, c.radius(40, 2), c.radius(40, 2), rng);
  const Field shade = smooth_noise(s, s, c.radius(14, 1), c.radius(14, 1), rng);
  const Field grain = smooth_noise(s, s, 1, 1, rng);
  const double mean = rng.uniform(85, 110), contrast = rng.uniform(28, 38);
  double fx[3], fy[3], ph[3];
  const double base = rng.uniform(0, kPi);
  for (int k = 0; k < 3; ++k) {
    const double a = base + k * kPi / 3 + rng.uniform(-0.2, 0.2), f = c.freq(rng.uniform(0.2, 0.32));
    fx[k] = 2 * kPi * f * std::cos(a), fy[k] = 2 * kPi * f * std::sin(a), ph[k] = rng.uniform(0, 2 * kPi);
  }
  for (int y = 0; y < s; ++y)
    for (int x = 0; x < s; ++x) {
      double v = 0;
      for (int k = 0; k < 3; ++k) v += std::cos(fx[k] * x + fy[k] * y + ph[k] + 1.5 * warp.at(x, y));
      c.img.at(x, y) = static_cast<float>(mean + contrast * (0.55 * v + 0.5 * grain.at(x, y) + 0.2 * shade.at(x, y)));
    }
  if (!defective) return;
  const Ellipse e = c.region(rng, 24, 48, 0.5);
  const double level = mean + rng.uniform(-14, 4);
  c.blend(e, 1.0, soft(e, 0.5), [&](int x, int y, float) { return level + 6 * shade.at(x, y); });
  c.labels.push_back(e.grown(1.2, c.dlen(6, 2)));
}

// Streaks along one direction: noise stretched by a long blur, then turned.
Field streaks(const Canvas& c, Rng& rng, double across512, double along512, double angle) {
  const int n = static_cast<int>(c.s * 1.5);
  const Noise f = make_noise(n, n, c.radius(across512), c.radius(along512, 3), rng);
  Field out(c.s, c.s);
  const double cs = std::cos(angle), sn = std::sin(angle), h = c.s / 2.0;
  for (int y = 0; y < c.s; ++y)
    for (int x = 0; x < c.s; ++x) {
      const double dx = x - h, dy = y - h;
      out.at(x, y) = f.at(n / 2.0 + dx * cs - dy * sn, n / 2.0 + dx * sn + dy * cs);
    }
  normalize(out);
  return out;
}

// 2: high-contrast vertical fibres; defect: a dark scratch.
void class2(Canvas& c, Rng& rng, bool defective) {
  const double tilt = rng.uniform(-0.15, 0.15);
  const Field f = streaks(c, rng, 0.0, 16, tilt);
  const double mean = rng.uniform(80, 100), contrast = rng.uniform(80, 95);
  for (size_t i = 0; i < f.v.size(); ++i) c.img.v[i] = static_cast<float>(mean + contrast * std::tanh(1.4 * f.v[i]));
  if (!defective) return;
  // Across the fibres, where a scratch stands out as in DAGM's class 2.
  const double length = c.dlen(rng.uniform(60, 140), 12), across = tilt + rng.uniform(-0.7, 0.7);
  const auto pts = c.curve(rng, length, across, 0.12);
  c.stroke(pts, c.dlen(rng.uniform(2.2, 3.2), 1.6), 10, 0.9);
}

// 3: softer diagonal streaks over shading; defect: a faint thin scratch.
void class3(Canvas& c, Rng& rng, bool defective) {
  const double angle = rng.uniform(0.6, 1.0);
  const Field f = streaks(c, rng, 0.6, 9, angle * rng.sign());
  const Field shade = smooth_noise(c.s, c.s, c.radius(50, 2), c.radius(50, 2), rng);
  const double mean = rng.uniform(120, 140), contrast = rng.uniform(30, 38);
  for (size_t i = 0; i < f.v.size(); ++i)
    c.img.v[i] = static_cast<float>(mean + contrast * f.v[i] + 12 * shade.v[i]);
  if (!defective) return;
  const double value = mean + rng.sign() * 75;
  const double length = c.dlen(rng.uniform(50, 120), 12), a = rng.uniform(0, kPi);
  const auto pts = c.curve(rng, length, a, 0.2);
  c.stroke(pts, c.dlen(rng.uniform(1.6, 2.2), 1.3), value, 0.6);
}

// 4: dark lines radiating from a point on light gray; defect: a dark curve.
void class4(Canvas& c, Rng& rng, bool defective) {
  const int s = c.s, m = 4096;
  Field ang = white_noise(m, 1, rng);
  blur(ang, 2, 0);
  normalize(ang);
  const Field grain = smooth_noise(s, s, 1, 1, rng);
  const double cx = s / 2.0 + c.len(rng.uniform(-60, 60)), cy = s / 2.0 + c.len(rng.uniform(-60, 60));
  const double mean = rng.uniform(155, 175), contrast = rng.uniform(45, 60);
  for (int y = 0; y < s; ++y)
    for (int x = 0; x < s; ++x) {
      const double t = (std::atan2(y - cy, x - cx) + kPi) / (2 * kPi) * m;
      const double line = smoothstep(0.7, 1.8, ang.sample(t, 0));
      c.img.at(x, y) = static_cast<float>(mean - contrast * line + 5 * grain.at(x, y));
    }
  if (!defective) return;
  const double length = c.dlen(rng.uniform(50, 110), 12), a = rng.uniform(0, kPi);
  const auto pts = c.curve(rng, length, a, 0.3);
  c.stroke(pts, c.dlen(rng.uniform(3, 4.5), 1.6), mean - 90, 0.75);
}

// 5: dense speckle on mottled gray; defect: one or a few dark spots.
void class5(Canvas& c, Rng& rng, bool defective) {
  const int s = c.s;
  Field dots(s, s);
  for (float& d : dots.v) d = rng.chance(0.05) ? static_cast<float>(rng.sign()) : 0.0f;
  blur(dots, 1, 1);
  normalize(dots);
  const Field shade = smooth_noise(s, s, c.radius(30, 2), c.radius(30, 2), rng);
  const double mean = rng.uniform(110, 135), contrast = rng.uniform(22, 30);
  for (size_t i = 0; i < dots.v.size(); ++i)
    c.img.v[i] = static_cast<float>(mean + contrast * dots.v[i] + 12 * shade.v[i]);
  if (!defective) return;
  const auto [cx, cy] = c.spot(rng);
  const int count = rng.range(1, 3);
  std::vector<std::pair<double, double>> footprint;
  for (int i = 0; i < count; ++i) {
    const double r = c.dlen(rng.uniform(7, 15), 2.5);
    const double ox = i ? c.dlen(rng.uniform(-18, 18)) : 0, oy = i ? c.dlen(rng.uniform(-18, 18)) : 0;
    const Ellipse e{cx + ox, cy + oy, r, r * rng.uniform(0.7, 1.0), rng.uniform(0, kPi)};
    const double value = mean - rng.uniform(55, 75);
    c.blend(e, 1.0, soft(e, 0.55), [&](int, int, float) { return value; });
    for (int k = 0; k < 8; ++k)
      footprint.emplace_back(e.cx + r * std::cos(k * kPi / 4), e.cy + r * std::sin(k * kPi / 4));
  }
  c.labels.push_back(ellipse_around(footprint, c.dlen(8, 3)));
}

// Glass-like blobs: thresholded smooth noise lit from one side.
void glassy(Field& out, const Field& g, double mean, double contrast) {
  for (int y = 0; y < g.h; ++y)
    for (int x = 0; x < g.w; ++x) {
      const double v = std::tanh(2.5 * g.at(x, y));
      const double relief = std::tanh(2.5 * g.at((x + 1) % g.w, y)) - std::tanh(2.5 * g.at((x + g.w - 1) % g.w, y));
      out.at(x, y) = static_cast<float>(mean + contrast * (0.7 * v + 1.2 * relief));
    }
}

// 6: glassy blobs; defect: a patch of much finer blobs.
void class6(Canvas& c, Rng& rng, bool defective) {
  const Field g = smooth_noise(c.s, c.s, c.radius(10, 2), c.radius(10, 2), rng);
  const double mean = rng.uniform(110, 135), contrast = rng.uniform(35, 45);
  glassy(c.img, g, mean, contrast);
  if (!defective) return;
  const Ellipse e = c.region(rng, 26, 50, 0.45);
  Field fine(c.s, c.s);
  glassy(fine, smooth_noise(c.s, c.s, c.radius(4, 1), c.radius(4, 1), rng), mean, contrast);
  c.blend(e, 1.0, soft(e, 0.5), [&](int x, int y, float) { return fine.at(x, y); });
  c.labels.push_back(e.grown(1.15, c.dlen(6, 2)));
}

// 7: plain weave (threads over and under); defect: a missing thread.
void class7(Canvas& c, Rng& rng, bool defective) {
  const int s = c.s;
  const double period = c.len(rng.uniform(9, 13), 4), a = rng.uniform(-0.07, 0.07);
  const double cs = std::cos(a), sn = std::sin(a);
  const Field grain = smooth_noise(s, s, 1, 1, rng);
  const Field shade = smooth_noise(s, s, c.radius(40, 2), c.radius(40, 2), rng);
  const double mean = rng.uniform(115, 140), contrast = rng.uniform(50, 65);
  auto weave = [&](double x, double y) {
    const double u = (x * cs + y * sn) / period, v = (-x * sn + y * cs) / period;
    const bool horizontal = (static_cast<long>(std::floor(u)) + static_cast<long>(std::floor(v))) % 2 == 0;
    return std::sin(kPi * (horizontal ? v - std::floor(v) : u - std::floor(u))) - 0.5;
  };
  for (int y = 0; y < s; ++y)
    for (int x = 0; x < s; ++x)
      c.img.at(x, y) = static_cast<float>(mean + contrast * weave(x, y) + 8 * grain.at(x, y) + 10 * shade.at(x, y));
  if (!defective) return;
  // A gap one thread wide along the weave, where the dark backing shows.
  const auto [cx, cy] = c.spot(rng);
  const bool along_u = rng.chance(0.5);
  const Ellipse e{cx, cy, c.dlen(rng.uniform(35, 90), 10), period * 0.55, a + (along_u ? 0 : kPi / 2)};
  const double backing = mean - contrast * rng.uniform(0.8, 1.1);
  c.blend(e, 1.0, soft(e, 0.7), [&](int x, int y, float) { return backing + 8 * grain.at(x, y); });
  c.labels.push_back(e.grown(1.1, c.dlen(8, 3)));
}

// 8: marble veins; defect: a jagged dark crack.
void class8(Canvas& c, Rng& rng, bool defective) {
  const int s = c.s;
  const Field t1 = smooth_noise(s, s, c.radius(28, 2), c.radius(28, 2), rng);
  const Field t2 = smooth_noise(s, s, c.radius(8, 1), c.radius(8, 1), rng);
  const Field grain = smooth_noise(s, s, 1, 1, rng);
  const double a = rng.uniform(0, kPi), f = 2 * kPi / c.len(rng.uniform(60, 110), 12);
  const double mean = rng.uniform(160, 180), contrast = rng.uniform(45, 60);
  for (int y = 0; y < s; ++y)
    for (int x = 0; x < s; ++x) {
      const double turb = 1.6 * t1.at(x, y) + 0.5 * t2.at(x, y);
      const double vein = std::pow(std::abs(std::sin(f * (x * std::cos(a) + y * std::sin(a)) + turb)), 0.3);
      c.img.at(x, y) = static_cast<float>(mean + contrast * (vein - 0.7) + 5 * grain.at(x, y));
    }
  if (!defective) return;
  auto [x, y] = c.spot(rng);
  double dir = rng.uniform(0, 2 * kPi);
  std::vector<std::pair<double, double>> pts{{x, y}};
  const int steps = rng.range(9, 15);
  for (int i = 0; i < steps; ++i) {
    dir += rng.uniform(-0.7, 0.7);
    const double step = c.dlen(rng.uniform(5, 10), 2);
    x += step * std::cos(dir), y += step * std::sin(dir);
    pts.emplace_back(x, y);
  }
  c.stroke(pts, c.dlen(rng.uniform(1.8, 2.6), 1.3), mean - 110, 0.8);
}

// 9: fine grain; defect: a faint, soft brightness change (the hard class).
void class9(Canvas& c, Rng& rng, bool defective) {
  const Field grain = smooth_noise(c.s, c.s, 1, 1, rng);
  const Field shade = smooth_noise(c.s, c.s, c.radius(40, 2), c.radius(40, 2), rng);
  const double mean = rng.uniform(115, 140), contrast = rng.uniform(20, 26);
  for (size_t i = 0; i < grain.v.size(); ++i)
    c.img.v[i] = static_cast<float>(mean + contrast * grain.v[i] + 8 * shade.v[i]);
  if (!defective) return;
  const Ellipse e = c.region(rng, 20, 40, 0.5);
  const double sign = rng.sign();
  const double delta = sign * rng.uniform(18, 26);
  c.blend(e, 1.0, soft(e, 0.3), [&](int, int, float p) { return p + delta; });
  c.labels.push_back(e.grown(1.15, c.dlen(6, 2)));
}

// 10: wood grain (rings around a far-away centre); defect: a knot.
void class10(Canvas& c, Rng& rng, bool defective) {
  const int s = c.s;
  const Field turb = smooth_noise(s, s, c.radius(30, 2), c.radius(30, 2), rng);
  const Field fibre = smooth_noise(s, s, 1, c.radius(4, 1), rng);
  const double ang = rng.uniform(0, 2 * kPi), dist = s * rng.uniform(1.2, 2.5);
  const double ox = s / 2.0 + dist * std::cos(ang), oy = s / 2.0 + dist * std::sin(ang);
  const double k = 2 * kPi / c.len(rng.uniform(14, 22), 5);
  const double mean = rng.uniform(130, 150), contrast = rng.uniform(35, 45);
  for (int y = 0; y < s; ++y)
    for (int x = 0; x < s; ++x) {
      const double r = std::hypot(x - ox, y - oy);
      c.img.at(x, y) =
          static_cast<float>(mean + contrast * std::sin(k * r + 2.5 * turb.at(x, y)) + 8 * fibre.at(x, y));
    }
  if (!defective) return;
  const Ellipse e = c.region(rng, 18, 36, 0.55);
  const double kk = k * rng.uniform(1.3, 1.8);
  c.blend(e, 1.0, soft(e, 0.55), [&](int x, int y, float) {
    const double rr = e.radius(x + 0.5, y + 0.5) * e.a;
    return mean - 25 * (1 - std::min(1.0, rr / e.a)) + contrast * std::sin(kk * rr) + 8 * fibre.at(x, y);
  });
  c.labels.push_back(e.grown(1.2, c.dlen(6, 2)));
}

void fill_mask(const std::vector<Ellipse>& labels, int s, std::vector<uint8_t>& mask) {
  mask.assign(static_cast<size_t>(s) * s, 0);
  for (const Ellipse& e : labels) {
    const double r = std::max(e.a, e.b);
    const int x0 = std::max(0, static_cast<int>(e.cx - r)), x1 = std::min(s - 1, static_cast<int>(e.cx + r) + 1);
    const int y0 = std::max(0, static_cast<int>(e.cy - r)), y1 = std::min(s - 1, static_cast<int>(e.cy + r) + 1);
    for (int y = y0; y <= y1; ++y)
      for (int x = x0; x <= x1; ++x)
        if (e.radius(x + 0.5, y + 0.5) <= 1.0) mask[static_cast<size_t>(y) * s + x] = 255;
  }
}

}  // namespace

SynthImage synthesize_image(int class_id, int size, bool defective, uint64_t seed, uint64_t index) {
  using Generator = void (*)(Canvas&, Rng&, bool);
  static constexpr Generator kClasses[] = {class1, class2, class3, class4, class5,
                                           class6, class7, class8, class9, class10};
  if (class_id < 1 || class_id > 10) throw Error("synth: class must be 1..10, got " + std::to_string(class_id));
  if (size < 32) throw Error("synth: image size must be at least 32, got " + std::to_string(size));
  Rng rng(data::derive_seed(seed, kImageSalt, static_cast<uint64_t>(class_id), index));
  Canvas c(size);
  kClasses[class_id - 1](c, rng, defective);
  SynthImage out;
  out.pixels.resize(c.img.v.size());
  for (size_t i = 0; i < c.img.v.size(); ++i)
    out.pixels[i] = static_cast<uint8_t>(std::lround(std::clamp(c.img.v[i], 0.0f, 255.0f)));
  fill_mask(c.labels, size, out.mask);
  return out;
}

}  // namespace unetind
