// Small helpers shared by the tests.
#pragma once
#include <dnnl.hpp>
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <random>
#include <sys/types.h>
#include <string>
#include <vector>

#include "unetind/error.h"
#include "unetind/tensor.h"

namespace unetind::test {

// Deterministic values in [lo, hi).
std::vector<float> random_values(size_t n, uint64_t seed, float lo = -1.f, float hi = 1.f);
Tensor random_tensor(const Shape& shape, uint64_t seed, float scale);

// Largest |a - b|; sizes must match.
double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b);
// The largest |x|, at least 1e-3: the scale that relative tolerances
// multiply (the floor keeps an all-zero tensor from demanding exact zeros).
double scale_of(const std::vector<float>& v);

// A fresh, empty temp directory for one test, removed at destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::string str(const std::string& rel = "") const { return rel.empty() ? path_.string() : (path_ / rel).string(); }

 private:
  std::filesystem::path path_;
};

// A small PNG file (a few dozen bytes) whose header declares a width x
// height 8-bit gray image: what a hostile upload looks like.
std::string png_declaring(uint32_t width, uint32_t height);

// Runs the unet-industrial binary with `args`; returns its exit code and
// fills `output` with stdout+stderr.
int run_cli(const std::string& args, std::string* output = nullptr);
// The same for any shell command line.
int run_shell(const std::string& command, std::string* output = nullptr);

// Starts a shell command line without waiting, its stdout and stderr into
// the file `log`; returns its pid (the command's own: the shell execs it).
pid_t spawn_shell(const std::string& command, const std::string& log);
// The same for the unet-industrial binary with `args`.
pid_t spawn_cli(const std::string& args, const std::string& log);
// Waits for it: its exit code, or 128 + the signal that ended it.
int wait_exit(pid_t pid);
// The same within `seconds`; past that it kills the process and returns -1.
int wait_exit_within(pid_t pid, double seconds);

// Expects `call` to throw an Error whose message names `name` ("name: ...")
// and holds `what`.
template <typename F>
void expect_error_naming(const std::string& name, F&& call, const std::string& what = "") {
  try {
    call();
    ADD_FAILURE() << "no error for " << name;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(name + ": "), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
  }
}

// <repo>/../shared, or "" when it is absent (a user's clone).
std::string shared_dir();

// Whether oneDNN runs bf16 natively here (AVX512-BF16). Elsewhere it
// emulates bf16 with plain AVX-512, or has no bf16 kernels at all.
bool cpu_has_bf16();

#define SKIP_WITHOUT_BF16()                                                                 \
  if (!::unetind::test::cpu_has_bf16())                                                     \
  GTEST_SKIP() << "this CPU has no AVX512-BF16 (oneDNN ISA "                                \
               << static_cast<int>(dnnl::get_effective_cpu_isa()) << "): bf16 is not tested here"

}  // namespace unetind::test
