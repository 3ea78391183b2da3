#include "progress.h"

#include <unistd.h>

#include <cstdio>

namespace unetind::cli {

Progress::Progress(std::string label, long total)
    : label_(std::move(label)), total_(total), active_(isatty(STDERR_FILENO)), start_(std::chrono::steady_clock::now()) {}

Progress::~Progress() {
  if (drawn_) std::fputc('\n', stderr);
}

void Progress::update(long done, const std::string& extra) {
  if (!active_ || total_ <= 0) return;
  const int width = 30;
  const double frac = static_cast<double>(done) / total_;
  const int filled = static_cast<int>(frac * width);
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double eta = done > 0 ? elapsed * (total_ - done) / done : 0;
  std::string bar(filled, '#');
  bar.resize(width, '.');
  std::fprintf(stderr, "\r%s [%s] %ld/%ld  %.0fs elapsed, ETA %.0fs  %s\x1b[K", label_.c_str(), bar.c_str(), done,
               total_, elapsed, eta, extra.c_str());
  std::fflush(stderr);
  drawn_ = true;
}

}  // namespace unetind::cli
