#include "train/run_directory.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "unetind/error.h"

namespace unetind {

namespace fs = std::filesystem;

namespace {
// Absolute, without "." or ".." or a trailing slash.
fs::path normal(const fs::path& dir) {
  std::error_code ec;
  fs::path p = fs::absolute(dir, ec).lexically_normal();
  return p.has_filename() ? p : p.parent_path();
}

// The outermost folder of `dir` that does not exist yet; empty when `dir` exists.
fs::path outermost_missing(const fs::path& dir) {
  fs::path missing;
  std::error_code ec;
  for (fs::path p = normal(dir); p != p.parent_path() && !fs::exists(p, ec); p = p.parent_path()) missing = p;
  return missing;
}
}  // namespace

RunDirectory::RunDirectory(const std::string& dir) : dir_(dir), created_(outermost_missing(dir)) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw_file_error(dir, "cannot create the run directory: " + ec.message());
  fd_ = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd_ < 0) throw_file_error(dir, std::string("cannot open the run directory: ") + std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd_);
    if (err == EWOULDBLOCK)
      throw_file_error(dir, "another training run is using this directory; wait for it to end, or choose another --out");
    throw_file_error(dir, std::string("cannot lock the run directory: ") + std::strerror(err));
  }
}

RunDirectory::~RunDirectory() {
  // fs::remove removes only empty folders: from the run directory out to
  // the outermost one made here, while they are empty.
  std::error_code ec;
  if (!created_.empty())
    for (fs::path p = normal(dir_); fs::remove(p, ec) && p != created_; p = p.parent_path()) {
    }
  ::close(fd_);  // releases the lock
}

}  // namespace unetind
