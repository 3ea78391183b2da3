// Every file the library writes goes through here: the bytes go to a temp file
// beside the target, are fsync'ed, and the temp file is renamed over the target,
// so a crash or Ctrl-C leaves either the old file or the new one, never half.
#pragma once
#include <string>
#include <string_view>

namespace unetind {

void write_file_atomic(const std::string& path, std::string_view bytes);

// Reads a whole file; throws Error naming the path if it cannot.
std::string read_file(const std::string& path);

}  // namespace unetind
