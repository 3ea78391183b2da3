#include "unetind/npy.h"

#include <algorithm>
#include <bit>
#include <cctype>
#include <cstring>
#include <limits>
#include <optional>

#include "unetind/atomic_file.h"
#include "unetind/error.h"

namespace unetind {

static_assert(std::endian::native == std::endian::little, "npy I/O assumes a little-endian host ('<f4')");

namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicSize = 6;
constexpr size_t kAlignment = 64;  // numpy pads the header so the data starts 64-byte aligned

std::string shape_literal(const Shape& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ',';  // a one-element Python tuple
  return s + ")";
}

// The header is a Python dict literal, e.g.
// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
// numpy writes its keys in that order, but any order and spacing is valid.
class HeaderParser {
 public:
  HeaderParser(const std::string& path, std::string_view text) : path_(path), text_(text) {}

  void parse(std::string& descr, bool& fortran_order, Shape& shape) {
    bool have_descr = false, have_order = false, have_shape = false;
    expect('{');
    while (!accept('}')) {
      std::string key = string_literal();
      expect(':');
      if (key == "descr") {
        descr = string_literal();
        have_descr = true;
      } else if (key == "fortran_order") {
        fortran_order = boolean();
        have_order = true;
      } else if (key == "shape") {
        shape = tuple();
        have_shape = true;
      } else {
        fail("unexpected key '" + key + "'");
      }
      if (!accept(',')) {
        expect('}');
        break;
      }
    }
    skip_space();
    if (pos_ != text_.size()) fail("trailing characters after the dict");
    if (!have_descr || !have_order || !have_shape) fail("missing 'descr', 'fortran_order' or 'shape'");
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw_file_error(path_, "bad .npy header at offset " + std::to_string(pos_) + ": " + what);
  }
  void skip_space() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  bool accept(char c) {
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!accept(c)) fail(std::string("expected '") + c + "'");
  }
  std::string string_literal() {
    skip_space();
    if (pos_ >= text_.size() || (text_[pos_] != '\'' && text_[pos_] != '"')) fail("expected a string");
    char quote = text_[pos_++];
    size_t end = text_.find(quote, pos_);
    if (end == std::string_view::npos) fail("unterminated string");
    std::string s(text_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return s;
  }
  bool boolean() {
    skip_space();
    for (auto [word, value] :
         {std::pair{std::string_view("True"), true}, std::pair{std::string_view("False"), false}}) {
      if (text_.substr(pos_, word.size()) == word) {
        pos_ += word.size();
        return value;
      }
    }
    fail("expected True or False");
  }
  Shape tuple() {
    Shape shape;
    expect('(');
    while (!accept(')')) {
      shape.push_back(dimension());
      if (!accept(',')) {
        expect(')');
        break;
      }
    }
    return shape;
  }
  int64_t dimension() {
    skip_space();
    int64_t value = 0;
    size_t start = pos_;
    while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_]))) {
      int digit = text_[pos_] - '0';
      if (value > (std::numeric_limits<int64_t>::max() - digit) / 10) fail("dimension too large");
      value = value * 10 + digit;
      ++pos_;
    }
    if (pos_ == start) fail("expected a non-negative integer dimension");
    // Python 2 era files wrote longs as e.g. 3L.
    if (pos_ < text_.size() && text_[pos_] == 'L') ++pos_;
    return value;
  }

  const std::string& path_;
  std::string_view text_;
  size_t pos_ = 0;
};

uint32_t read_le(const std::string& bytes, size_t offset, size_t width) {
  uint32_t value = 0;
  for (size_t i = 0; i < width; ++i)
    value |= static_cast<uint32_t>(static_cast<unsigned char>(bytes[offset + i])) << (8 * i);
  return value;
}

}  // namespace

void write_npy(const std::string& path, const Tensor& tensor) {
  if (static_cast<int64_t>(tensor.data.size()) != shape_numel(tensor.shape)) {
    throw_file_error(path, "tensor of shape " + shape_to_string(tensor.shape) + " holds " +
                               std::to_string(tensor.data.size()) + " values");
  }
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape_literal(tensor.shape) + ", }";
  const size_t prefix = kMagicSize + 2 + 2;  // magic, version, header length
  // Pad with spaces and end with a newline so the data starts aligned.
  size_t total = (prefix + dict.size() + 1 + kAlignment - 1) / kAlignment * kAlignment;
  size_t header_len = total - prefix;
  if (header_len > std::numeric_limits<uint16_t>::max()) throw_file_error(path, "shape too long for a .npy 1.0 header");
  dict.resize(header_len - 1, ' ');
  dict += '\n';

  std::string bytes(kMagic, kMagicSize);
  bytes += '\x01';
  bytes += '\x00';
  bytes += static_cast<char>(header_len & 0xff);
  bytes += static_cast<char>(header_len >> 8);
  bytes += dict;
  const size_t data_offset = bytes.size();
  bytes.resize(data_offset + tensor.data.size() * sizeof(float));
  if (!tensor.data.empty())
    std::memcpy(bytes.data() + data_offset, tensor.data.data(), tensor.data.size() * sizeof(float));
  write_file_atomic(path, bytes);
}

Tensor read_npy(const std::string& path) {
  const std::string bytes = read_file(path);
  if (bytes.size() < kMagicSize + 2 || bytes.compare(0, kMagicSize, kMagic, kMagicSize) != 0) {
    throw_file_error(path, "not a .npy file (bad magic)");
  }
  const int major = static_cast<unsigned char>(bytes[kMagicSize]);
  const int minor = static_cast<unsigned char>(bytes[kMagicSize + 1]);
  if ((major != 1 && major != 2) || minor != 0) {
    throw_file_error(path, "unsupported .npy version " + std::to_string(major) + "." + std::to_string(minor));
  }
  const size_t len_width = major == 1 ? 2 : 4;
  const size_t prefix = kMagicSize + 2 + len_width;
  if (bytes.size() < prefix) throw_file_error(path, "truncated .npy header");
  const size_t header_len = read_le(bytes, kMagicSize + 2, len_width);
  if (header_len > bytes.size() - prefix) {
    throw_file_error(path, "header length " + std::to_string(header_len) + " runs past the end of the file (" +
                               std::to_string(bytes.size()) + " bytes)");
  }

  std::string descr;
  bool fortran_order = false;
  Shape shape;
  HeaderParser(path, std::string_view(bytes).substr(prefix, header_len)).parse(descr, fortran_order, shape);
  if (descr != "<f4") throw_file_error(path, "dtype '" + descr + "' is not supported (only '<f4')");
  if (fortran_order) throw_file_error(path, "Fortran-order arrays are not supported");

  const size_t data_bytes = bytes.size() - prefix - header_len;
  // Checked product: a corrupt shape must not overflow into a plausible size.
  const uint64_t stored = data_bytes / sizeof(float);
  bool fits = data_bytes % sizeof(float) == 0;
  uint64_t count = std::find(shape.begin(), shape.end(), 0) != shape.end() ? 0 : 1;
  for (int64_t d : shape) {
    if (!fits || count == 0) break;
    fits = count <= stored / static_cast<uint64_t>(d);
    count *= static_cast<uint64_t>(d);
  }
  if (!fits || count != stored) {
    throw_file_error(path, "shape " + shape_to_string(shape) + " does not match the " + std::to_string(data_bytes) +
                               " data bytes in the file");
  }
  Tensor tensor(shape);
  if (data_bytes) std::memcpy(tensor.data.data(), bytes.data() + prefix + header_len, data_bytes);
  return tensor;
}

}  // namespace unetind
