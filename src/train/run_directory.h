// A training run's directory, held by one process at a time: two `train
// --out same/` at once would interleave their files.
#pragma once
#include <filesystem>
#include <string>

namespace unetind {

class RunDirectory {
 public:
  // Creates `dir` where it does not exist and takes an exclusive lock on
  // the directory itself (flock: no lock file is left behind, and the lock
  // ends with the process however it ends). Throws Error naming `dir` when
  // another process holds it.
  explicit RunDirectory(const std::string& dir);
  // Unlocks. The folders made here that are still empty (the run was
  // refused before writing anything) are removed again.
  ~RunDirectory();
  RunDirectory(const RunDirectory&) = delete;
  RunDirectory& operator=(const RunDirectory&) = delete;

 private:
  std::string dir_;
  std::filesystem::path created_;  // the outermost folder made here; empty if none
  int fd_ = -1;
};

}  // namespace unetind
