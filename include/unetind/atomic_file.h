// Every file the library writes goes through here: the bytes go to a temp file
// beside the target, are fsync'ed, and the temp file is renamed over the target,
// so a crash or Ctrl-C leaves either the old file or the new one, never half.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace unetind {

// The temp file is hidden (".name.tmp.<pid>.<n>"), and the name in it is
// shortened where needed, so that any target name the file system takes
// works, up to its 255-byte limit.
void write_file_atomic(const std::string& path, std::string_view bytes);

// Throws Error naming `output` when it is the same file as one of `inputs`
// (under any name: another spelling, a link): writing it would destroy that
// input.
void check_output_is_not_input(const std::string& output, const std::vector<std::string>& inputs);

// Reads a whole file; throws Error naming the path if it cannot.
std::string read_file(const std::string& path);

}  // namespace unetind
