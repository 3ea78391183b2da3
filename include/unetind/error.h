// Errors at the library boundary: one exception type, with messages that name
// the file (and the tensor, line or pixel) that is wrong. The library never
// calls exit(); the CLI turns an Error into a message and an exit code.
#pragma once
#include <stdexcept>
#include <string>

namespace unetind {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// "path: what" — the form every I/O error takes.
[[noreturn]] void throw_file_error(const std::string& path, const std::string& what);

}  // namespace unetind
