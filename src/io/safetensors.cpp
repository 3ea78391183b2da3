#include "unetind/safetensors.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "unetind/atomic_file.h"
#include "unetind/error.h"

namespace unetind {

static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

namespace {

using nlohmann::json;

constexpr size_t kLengthBytes = 8;
constexpr const char* kMetadataKey = "__metadata__";

enum class Dtype { kF32, kBF16, kF16 };
const char* dtype_name(Dtype dtype) { return dtype == Dtype::kF32 ? "F32" : dtype == Dtype::kBF16 ? "BF16" : "F16"; }

struct Entry {
  std::string name;
  Dtype dtype;
  Shape shape;
  uint64_t begin;
  uint64_t end;
};

size_t dtype_size(Dtype dtype) { return dtype == Dtype::kF32 ? 4 : 2; }

float bf16_to_float(uint16_t bits) { return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16); }

float f16_to_float(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1f;
  const uint32_t mantissa = bits & 0x3ff;
  if (exponent == 0) {
    // Zero or subnormal: mantissa * 2^-24, exact in float32.
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));  // inf, nan (payload kept)
  return std::bit_cast<float>(sign | ((exponent - 15 + 127) << 23) | (mantissa << 13));
}

uint16_t load_u16(const char* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// nlohmann::json keeps only the last of duplicate keys, so duplicates are
// caught while parsing: tensor names at depth 1, metadata keys at depth 2.
json parse_header(const std::string& path, std::string_view text) {
  std::set<std::string> names;
  std::set<std::string> metadata_keys;
  std::string current;
  std::string duplicate;
  json::parser_callback_t check_keys = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event != json::parse_event_t::key || !parsed.is_string()) return true;
    const std::string& key = parsed.get_ref<const std::string&>();
    if (depth == 1) {
      current = key;
      if (!names.insert(key).second && duplicate.empty()) duplicate = "tensor '" + key + "' appears twice";
    } else if (depth == 2 && current == kMetadataKey) {
      if (!metadata_keys.insert(key).second && duplicate.empty())
        duplicate = "metadata key '" + key + "' appears twice";
    }
    return true;
  };
  json header = json::parse(text.begin(), text.end(), check_keys, /*allow_exceptions=*/false);
  if (header.is_discarded()) throw_file_error(path, "header is not valid JSON");
  if (!header.is_object()) throw_file_error(path, "header is not a JSON object");
  if (!duplicate.empty()) throw_file_error(path, duplicate);
  return header;
}

uint64_t unsigned_field(const std::string& path, const std::string& name, const json& value, const char* what) {
  if (!value.is_number_unsigned()) {
    throw_file_error(path, "tensor '" + name + "': " + what + " must be a non-negative integer, got " + value.dump());
  }
  return value.get<uint64_t>();
}

Entry parse_entry(const std::string& path, const std::string& name, const json& info, uint64_t data_size) {
  auto fail = [&](const std::string& what) { throw_file_error(path, "tensor '" + name + "': " + what); };
  if (!info.is_object()) fail("entry is not a JSON object");
  for (const char* field : {"dtype", "shape", "data_offsets"}) {
    if (!info.contains(field)) fail(std::string("missing '") + field + "'");
  }

  Entry entry{name, Dtype::kF32, {}, 0, 0};
  const json& dtype = info["dtype"];
  if (!dtype.is_string()) fail("dtype must be a string");
  const std::string& dtype_name = dtype.get_ref<const std::string&>();
  if (dtype_name == "F32") {
    entry.dtype = Dtype::kF32;
  } else if (dtype_name == "BF16") {
    entry.dtype = Dtype::kBF16;
  } else if (dtype_name == "F16") {
    entry.dtype = Dtype::kF16;
  } else {
    fail("unsupported dtype '" + dtype_name + "' (F32, BF16 and F16 are read)");
  }

  const json& shape = info["shape"];
  if (!shape.is_array()) fail("shape must be an array");
  // Checked product against the data section: a corrupt shape must not
  // overflow into a plausible byte count.
  const uint64_t element = dtype_size(entry.dtype);
  const uint64_t max_count = data_size / element;
  uint64_t count = 1;
  bool fits = true;
  for (const json& dim : shape) {
    uint64_t d = unsigned_field(path, name, dim, "shape dimension");
    if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) fail("shape dimension too large");
    entry.shape.push_back(static_cast<int64_t>(d));
    if (d == 0) {
      count = 0;
    } else if (count > max_count / d) {
      fits = false;
    } else {
      count *= d;
    }
  }
  if (count == 0) fits = true;

  const json& offsets = info["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2) fail("data_offsets must be [begin, end]");
  entry.begin = unsigned_field(path, name, offsets[0], "data_offsets[0]");
  entry.end = unsigned_field(path, name, offsets[1], "data_offsets[1]");
  std::string range = "[";  // built by appending: GCC 12 warns falsely (-Wrestrict) on "[" + std::string
  range += std::to_string(entry.begin) + ", " + std::to_string(entry.end) + "]";
  if (entry.begin > entry.end) fail("data_offsets " + range + " begin after end");
  if (entry.end > data_size) {
    fail("data_offsets " + range + " run past the data section (" + std::to_string(data_size) + " bytes)");
  }
  if (!fits || count * element != entry.end - entry.begin) {
    fail("shape " + shape_to_string(entry.shape) + " of " + dtype_name + " does not match data_offsets " + range);
  }
  return entry;
}

Tensor decode(const Entry& entry, const char* data) {
  Tensor tensor(entry.shape);
  const size_t n = tensor.data.size();
  float* out = tensor.data.data();
  switch (entry.dtype) {
    case Dtype::kF32:
      if (n) std::memcpy(out, data, n * sizeof(float));
      break;
    case Dtype::kBF16:
      for (size_t i = 0; i < n; ++i) out[i] = bf16_to_float(load_u16(data + 2 * i));
      break;
    case Dtype::kF16:
      for (size_t i = 0; i < n; ++i) out[i] = f16_to_float(load_u16(data + 2 * i));
      break;
  }
  return tensor;
}

}  // namespace

const Tensor* SafetensorsFile::find(const std::string& name) const {
  for (const NamedTensor& t : tensors) {
    if (t.name == name) return &t.tensor;
  }
  return nullptr;
}

namespace {

// A file's parts: its header as parsed, where the data section begins, and
// the tensors and metadata decoded.
struct ParsedFile {
  json header;
  size_t data_start = 0;
  SafetensorsFile file;
};

ParsedFile parse_file(const std::string& path, const std::string& bytes) {
  if (bytes.size() < kLengthBytes) {
    throw_file_error(path, "file is " + std::to_string(bytes.size()) + " bytes, too short for a safetensors header");
  }
  uint64_t header_len;
  std::memcpy(&header_len, bytes.data(), sizeof header_len);
  if (header_len > bytes.size() - kLengthBytes) {
    throw_file_error(path, "the header is " + std::to_string(header_len) + " bytes long, but only " +
                               std::to_string(bytes.size() - kLengthBytes) + " bytes follow its 8-byte length " +
                               "(a truncated file, or not safetensors)");
  }
  ParsedFile parsed;
  parsed.header = parse_header(path, std::string_view(bytes).substr(kLengthBytes, header_len));
  parsed.data_start = kLengthBytes + header_len;
  const json& header = parsed.header;
  const char* data = bytes.data() + parsed.data_start;
  const uint64_t data_size = bytes.size() - parsed.data_start;

  SafetensorsFile& file = parsed.file;
  std::vector<Entry> entries;
  for (const auto& [name, info] : header.items()) {
    if (name == kMetadataKey) {
      if (!info.is_object()) throw_file_error(path, "__metadata__ is not a JSON object");
      for (const auto& [key, value] : info.items()) {
        if (!value.is_string()) throw_file_error(path, "__metadata__ value of '" + key + "' is not a string");
        file.metadata[key] = value.get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(path, name, info, data_size));
  }

  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return std::tie(a.begin, a.end) < std::tie(b.begin, b.end); });
  for (size_t i = 1; i < entries.size(); ++i) {
    if (entries[i].begin < entries[i - 1].end) {
      throw_file_error(path, "tensors '" + entries[i - 1].name + "' and '" + entries[i].name + "' overlap");
    }
  }

  file.tensors.reserve(entries.size());
  for (const Entry& entry : entries) {
    file.tensors.push_back({entry.name, decode(entry, data + entry.begin)});
    file.stored_dtypes[entry.name] = dtype_name(entry.dtype);
  }
  return parsed;
}

// The length prefix and the header, padded with spaces (valid JSON) so that
// the data section after it starts 8-byte aligned.
template <typename Json>
std::string header_bytes(const Json& header) {
  std::string text = header.dump();
  text.resize((text.size() + 7) / 8 * 8, ' ');
  const uint64_t header_len = text.size();
  std::string bytes(kLengthBytes, '\0');
  std::memcpy(bytes.data(), &header_len, sizeof header_len);
  return bytes + text;
}

}  // namespace

SafetensorsFile read_safetensors(const std::string& path) { return parse_file(path, read_file(path)).file; }

void update_safetensors_metadata(
    const std::string& path,
    const std::function<void(const SafetensorsFile& file, std::map<std::string, std::string>& metadata)>& edit) {
  const std::string bytes = read_file(path);
  ParsedFile parsed = parse_file(path, bytes);
  std::map<std::string, std::string> metadata = parsed.file.metadata;
  edit(parsed.file, metadata);
  parsed.header.erase(kMetadataKey);
  if (!metadata.empty()) parsed.header[kMetadataKey] = metadata;
  // The tensors' offsets count from the data section, which is copied whole.
  write_file_atomic(path, header_bytes(parsed.header) + bytes.substr(parsed.data_start));
}

void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // Keys in the given order, so the header reads like the file.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  uint64_t offset = 0;
  for (const NamedTensor& t : tensors) {
    if (t.name == kMetadataKey) throw_file_error(path, "a tensor cannot be named __metadata__");
    if (header.contains(t.name)) throw_file_error(path, "tensor '" + t.name + "' given twice");
    if (static_cast<int64_t>(t.tensor.data.size()) != shape_numel(t.tensor.shape)) {
      throw_file_error(path, "tensor '" + t.name + "' of shape " + shape_to_string(t.tensor.shape) + " holds " +
                                 std::to_string(t.tensor.data.size()) + " values");
    }
    const uint64_t size = t.tensor.data.size() * sizeof(float);
    header[t.name] = {{"dtype", "F32"}, {"shape", t.tensor.shape}, {"data_offsets", {offset, offset + size}}};
    offset += size;
  }
  std::string bytes = header_bytes(header);
  bytes.reserve(bytes.size() + offset);
  for (const NamedTensor& t : tensors) {
    bytes.append(reinterpret_cast<const char*>(t.tensor.data.data()), t.tensor.data.size() * sizeof(float));
  }
  write_file_atomic(path, bytes);
}

}  // namespace unetind
