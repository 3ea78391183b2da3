// printf-style formatting into std::string, shared by the text table and the
// HTML report so that both print numbers alike.
#pragma once
#include <optional>
#include <string>

namespace unetind {

std::string printf_string(const char* format, ...) __attribute__((format(printf, 1, 2)));

// "%*.4f", or "n/a" right-aligned to the same width for an undefined value.
std::string format_optional(const std::optional<double>& value, int width = 0);

}  // namespace unetind
