// Text formatting shared by the text table, the HTML report and the CSV
// writers: printf-style numbers, so that all print them alike, and CSV fields.
#pragma once
#include <optional>
#include <string>

namespace unetind {

std::string printf_string(const char* format, ...) __attribute__((format(printf, 1, 2)));

// "%*.4f", or "n/a" right-aligned to the same width for an undefined value.
std::string format_optional(const std::optional<double>& value, int width = 0);

// One CSV field (RFC 4180): quoted, with inner quotes doubled, when it holds a
// comma, a quote or a line break.
std::string csv_field(const std::string& text);

}  // namespace unetind
