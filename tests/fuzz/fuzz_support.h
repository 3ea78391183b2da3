// What the harnesses share. Each harness (fuzz_<name>.cpp) defines
// LLVMFuzzerTestOneInput for one parser. Built by `make fuzz` (clang,
// build-fuzz/) it is a libFuzzer binary; in the normal build it is linked
// with replay_main.cpp, and ctest replays tests/fuzz/regressions/<name>/
// through it. A harness accepts one outcome of a bad input: the parser's
// unetind::Error. Anything else (a crash, a sanitizer report, another
// exception, a broken invariant) is a finding.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace unetind::fuzz {

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// This process's scratch folder, in memory (/dev/shm) where there is one;
// removed at exit.
inline const std::filesystem::path& scratch_path() {
  namespace fs = std::filesystem;
  static const fs::path dir = [] {
    const fs::path base = fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(scratch_path(), ec);
    });
    return base / ("unetind-fuzz-" + std::to_string(::getpid()));
  }();
  return dir;
}

// The scratch folder, emptied: for the parsers that read files. Each input
// starts from an empty one, so that no file of an earlier input changes what
// a later one does.
inline const std::filesystem::path& fresh_scratch_dir() {
  std::filesystem::remove_all(scratch_path());
  std::filesystem::create_directories(scratch_path());
  return scratch_path();
}

inline void write_bytes(const std::filesystem::path& path, std::string_view bytes) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// The input as the file `name` in a fresh scratch folder: its path.
inline std::string input_file(const char* name, const uint8_t* data, size_t size) {
  const std::filesystem::path path = fresh_scratch_dir() / name;
  write_bytes(path, as_text(data, size));
  return path.string();
}

// Bitwise equal (NaN payloads included), empty arrays too.
inline bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

// A broken invariant: report it and abort, which libFuzzer counts as a crash.
[[noreturn]] inline void finding(const std::string& what) {
  std::fprintf(stderr, "fuzz finding: %s\n", what.c_str());
  std::abort();
}

}  // namespace unetind::fuzz
