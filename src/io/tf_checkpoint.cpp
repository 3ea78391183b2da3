#include "unetind/tf_checkpoint.h"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "io/crc32c.h"
#include "io/leveldb_table.h"
#include "io/wire_format.h"
#include "unetind/atomic_file.h"
#include "unetind/error.h"

namespace unetind {

static_assert(std::endian::native == std::endian::little, "the tensor-bundle reader assumes a little-endian host");

namespace {

namespace fs = std::filesystem;

// tensor_bundle.proto
constexpr uint32_t kHeaderNumShards = 1, kHeaderEndianness = 2, kHeaderVersion = 3;
constexpr uint32_t kVersionMinConsumer = 2, kVersionBadConsumers = 3;
constexpr uint32_t kEntryDtype = 1, kEntryShape = 2, kEntryShardId = 3, kEntryOffset = 4, kEntrySize = 5,
                   kEntryCrc32c = 6, kEntrySlices = 7;
// tensor_shape.proto
constexpr uint32_t kShapeDim = 2, kShapeUnknownRank = 3, kDimSize = 1;
constexpr uint64_t kBigEndian = 1;
// The bundle version this reader understands (TF's kTensorBundleVersion).
constexpr int64_t kReaderVersion = 1;

// The `checkpoint` file tf.train.Saver keeps beside its checkpoints is a text
// CheckpointState proto; its model_checkpoint_path names the latest one.
std::string latest_from_state_file(const std::string& dir) {
  const std::string state_path = (fs::path(dir) / "checkpoint").string();
  const std::string text = read_file(state_path);
  const std::string field = "model_checkpoint_path:";
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (!line.starts_with(field)) continue;
    const size_t open = line.find('"');
    const size_t close = line.rfind('"');
    if (open == std::string::npos || close <= open) break;
    const fs::path prefix = line.substr(open + 1, close - open - 1);
    if (!prefix.is_absolute()) return (fs::path(dir) / prefix).string();
    // An absolute path from the training machine (NVIDIA's container writes
    // /results/...) still finds the checkpoint when the directory has moved.
    std::error_code ec;
    if (!fs::exists(prefix.string() + ".index", ec)) return (fs::path(dir) / prefix.filename()).string();
    return prefix.string();
  }
  throw_file_error(state_path, "no model_checkpoint_path line");
}

std::string dtype_name(int32_t value) {
  static const char* const kNames[] = {"DT_INVALID",  "DT_FLOAT",   "DT_DOUBLE", "DT_INT32",      "DT_UINT8",
                                       "DT_INT16",    "DT_INT8",    "DT_STRING", "DT_COMPLEX64",  "DT_INT64",
                                       "DT_BOOL",     "DT_QINT8",   "DT_QUINT8", "DT_QINT32",     "DT_BFLOAT16",
                                       "DT_QINT16",   "DT_QUINT16", "DT_UINT16", "DT_COMPLEX128", "DT_HALF",
                                       "DT_RESOURCE", "DT_VARIANT", "DT_UINT32", "DT_UINT64"};
  if (value >= 0 && value < static_cast<int32_t>(std::size(kNames))) return kNames[value];
  return "DT_" + std::to_string(value);
}

int32_t parse_header(std::string_view bytes) {
  int32_t num_shards = 1;
  wire::MessageReader r(bytes);
  while (r.next()) {
    switch (r.field()) {
      case kHeaderNumShards:
        num_shards = static_cast<int32_t>(r.varint());
        break;
      case kHeaderEndianness:
        if (r.varint() == kBigEndian) throw Error("big-endian bundles are not supported");
        break;
      case kHeaderVersion: {
        wire::MessageReader v(r.bytes());
        while (v.next()) {
          if (v.field() == kVersionMinConsumer) {
            if (static_cast<int64_t>(v.varint()) > kReaderVersion)
              throw Error("written for bundle readers newer than version " + std::to_string(kReaderVersion));
          } else if (v.field() == kVersionBadConsumers) {
            if (static_cast<int64_t>(v.varint()) == kReaderVersion)
              throw Error("marks bundle reader version " + std::to_string(kReaderVersion) + " as bad");
          } else {
            v.skip();
          }
        }
        break;
      }
      default:
        r.skip();
    }
  }
  if (num_shards < 1) throw Error("bad shard count " + std::to_string(num_shards));
  return num_shards;
}

Shape parse_shape(std::string_view bytes) {
  Shape shape;
  wire::MessageReader r(bytes);
  while (r.next()) {
    if (r.field() == kShapeDim) {
      int64_t size = -1;
      wire::MessageReader d(r.bytes());
      while (d.next()) {
        if (d.field() == kDimSize)
          size = static_cast<int64_t>(d.varint());
        else
          d.skip();
      }
      if (size < 0) throw Error("dimension of unknown size");
      shape.push_back(size);
    } else if (r.field() == kShapeUnknownRank) {
      if (r.varint()) throw Error("shape of unknown rank");
    } else {
      r.skip();
    }
  }
  return shape;
}

TfTensorInfo parse_entry(const std::string& name, std::string_view bytes) {
  TfTensorInfo t;
  t.name = name;
  wire::MessageReader r(bytes);
  while (r.next()) {
    switch (r.field()) {
      case kEntryDtype:
        t.dtype = static_cast<TfDtype>(r.varint());
        break;
      case kEntryShape:
        t.shape = parse_shape(r.bytes());
        break;
      case kEntryShardId:
        t.shard = static_cast<int32_t>(r.varint());
        break;
      case kEntryOffset:
        t.offset = static_cast<int64_t>(r.varint());
        break;
      case kEntrySize:
        t.size = static_cast<int64_t>(r.varint());
        break;
      case kEntryCrc32c:
        t.masked_crc32c = r.fixed32();
        break;
      case kEntrySlices:
        throw Error("a partitioned variable (saved in slices), which is not supported");
      default:
        r.skip();
    }
  }
  if (t.offset < 0 || t.size < 0) throw Error("negative offset or size");
  // Byte counts (elements x at most 8 bytes) must not wrap around either.
  if (shape_numel(t.shape) > INT64_MAX / 8) throw Error("shape " + shape_to_string(t.shape) + " is too large");
  return t;
}

}  // namespace

std::string to_string(TfDtype dtype) { return dtype_name(static_cast<int32_t>(dtype)); }

std::string resolve_tf_checkpoint_prefix(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    const fs::path saved_model = fs::path(path) / "variables" / "variables";
    if (fs::exists(saved_model.string() + ".index", ec)) return saved_model.string();
    if (fs::exists(fs::path(path) / "checkpoint", ec)) {
      std::string prefix = latest_from_state_file(path);
      if (!fs::exists(prefix + ".index", ec))
        throw_file_error(prefix + ".index", "named by " + (fs::path(path) / "checkpoint").string() + " but missing");
      return prefix;
    }
    throw_file_error(path,
                     "a directory without variables/variables.index (SavedModel, TF-Hub module) or a "
                     "`checkpoint` file (training directory)");
  }
  if (fs::path(path).filename() == "checkpoint" && fs::is_regular_file(path, ec)) {
    const std::string dir = fs::path(path).parent_path().string();
    return resolve_tf_checkpoint_prefix(dir.empty() ? "." : dir);
  }
  if (path.ends_with(".index") && fs::is_regular_file(path, ec)) return path.substr(0, path.size() - 6);
  if (fs::exists(path + ".index", ec)) return path;
  throw_file_error(path, "not a TensorFlow checkpoint: " + path + ".index does not exist");
}

TfCheckpoint::TfCheckpoint(const std::string& path) : prefix_(resolve_tf_checkpoint_prefix(path)) {
  const std::string index = index_path();
  const std::string bytes = read_file(index);
  std::vector<leveldb_table::Entry> entries = leveldb_table::read_table(index, bytes);
  if (entries.empty() || !entries.front().key.empty())
    throw_file_error(index, "no bundle header (the entry with the empty key)");
  try {
    num_shards_ = parse_header(entries.front().value);
  } catch (const Error& e) {
    throw_file_error(index, std::string("bad bundle header: ") + e.what());
  }
  for (size_t i = 1; i < entries.size(); ++i) {
    try {
      tensors_.push_back(parse_entry(entries[i].key, entries[i].value));
    } catch (const Error& e) {
      throw_file_error(index, "tensor '" + entries[i].key + "': " + e.what());
    }
    const TfTensorInfo& t = tensors_.back();
    if (t.shard < 0 || t.shard >= num_shards_)
      throw_file_error(index, "tensor '" + t.name + "' is in shard " + std::to_string(t.shard) + " of " +
                                  std::to_string(num_shards_));
  }
}

std::string TfCheckpoint::shard_path(int32_t shard) const {
  char suffix[64];
  std::snprintf(suffix, sizeof suffix, ".data-%05d-of-%05d", shard, num_shards_);
  return prefix_ + suffix;
}

const TfTensorInfo* TfCheckpoint::find(const std::string& name) const {
  auto it = std::lower_bound(tensors_.begin(), tensors_.end(), name,
                             [](const TfTensorInfo& t, const std::string& n) { return t.name < n; });
  return it != tensors_.end() && it->name == name ? &*it : nullptr;
}

const TfTensorInfo& TfCheckpoint::get(const std::string& name, TfDtype dtype) const {
  const TfTensorInfo* t = find(name);
  if (!t) throw_file_error(index_path(), "no tensor '" + name + "'");
  if (t->dtype != dtype)
    throw_file_error(index_path(), "tensor '" + name + "' is " + to_string(t->dtype) + ", not " + to_string(dtype));
  return *t;
}

std::string TfCheckpoint::read_bytes(const TfTensorInfo& t) const {
  const std::string path = shard_path(t.shard);
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw_file_error(path, "cannot open data shard " + std::to_string(t.shard) + " of " + std::to_string(num_shards_) +
                               " (needed for tensor '" + t.name + "')");
  in.seekg(0, std::ios::end);
  const auto file_size = static_cast<int64_t>(in.tellg());
  if (t.offset > file_size || t.size > file_size - t.offset)
    throw_file_error(path, "tensor '" + t.name + "' (bytes " + std::to_string(t.offset) + ".." +
                               std::to_string(t.offset + t.size) + ") runs past the end of the " +
                               std::to_string(file_size) + "-byte shard (truncated file?)");
  std::string bytes(static_cast<size_t>(t.size), '\0');
  in.seekg(t.offset);
  if (!in.read(bytes.data(), t.size)) throw_file_error(path, "read failed for tensor '" + t.name + "'");
  return bytes;
}

// A fixed-width tensor's bytes, checked against its size and crc32c.
std::string TfCheckpoint::read_fixed_width(const std::string& name, TfDtype dtype, size_t element_size) const {
  const TfTensorInfo& t = get(name, dtype);
  const int64_t expected_size = shape_numel(t.shape) * static_cast<int64_t>(element_size);
  if (t.size != expected_size)
    throw_file_error(index_path(), "tensor '" + name + "' of shape " + shape_to_string(t.shape) + " has " +
                                       std::to_string(t.size) + " bytes, expected " + std::to_string(expected_size));
  std::string bytes = read_bytes(t);
  const uint32_t crc = crc32c::value(bytes);
  if (!crc32c::matches(t.masked_crc32c, crc32c::mask(crc)))
    throw_file_error(shard_path(t.shard), "crc32c mismatch for tensor '" + name + "' (index says " +
                                              std::to_string(crc32c::unmask(t.masked_crc32c)) + ", data gives " +
                                              std::to_string(crc) + ")");
  return bytes;
}

Tensor TfCheckpoint::read_float(const std::string& name) const {
  const std::string bytes = read_fixed_width(name, TfDtype::Float, sizeof(float));
  Tensor out(find(name)->shape);
  if (!bytes.empty()) std::memcpy(out.data.data(), bytes.data(), bytes.size());  // an empty tensor has no buffer
  return out;
}

std::vector<int64_t> TfCheckpoint::read_int64(const std::string& name) const {
  const std::string bytes = read_fixed_width(name, TfDtype::Int64, sizeof(int64_t));
  std::vector<int64_t> out(bytes.size() / sizeof(int64_t));
  if (!bytes.empty()) std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

// Layout (tensor_bundle.cc): varint64 length of every element, the masked
// crc32c of those lengths, then the elements' bytes. Both checksums extend
// over each length as a little-endian uint32 (uint64 past 4 GiB), not over
// its varint coding, and the tensor's checksum also covers the stored
// length checksum.
std::vector<std::string> TfCheckpoint::read_strings(const std::string& name) const {
  const TfTensorInfo& t = get(name, TfDtype::String);
  const std::string path = shard_path(t.shard);
  const std::string bytes = read_bytes(t);
  std::string_view in = bytes;
  auto fail = [&](const std::string& why) { throw_file_error(path, "string tensor '" + name + "': " + why); };

  const int64_t count = shape_numel(t.shape);
  std::vector<uint64_t> lengths;
  uint32_t crc = 0;
  uint64_t total = 0;
  uint32_t stored_lengths_crc = 0;
  try {
    for (int64_t i = 0; i < count; ++i) {
      const uint64_t length = wire::read_varint(in);
      if (length <= UINT32_MAX) {
        const auto length32 = static_cast<uint32_t>(length);
        crc = crc32c::extend(crc, &length32, sizeof length32);
      } else {
        crc = crc32c::extend(crc, &length, sizeof length);
      }
      lengths.push_back(length);
      total += length;
    }
    stored_lengths_crc = wire::read_fixed32(in);
  } catch (const Error& e) {
    fail(e.what());
  }
  if (!crc32c::matches(stored_lengths_crc, crc32c::mask(crc))) fail("crc32c mismatch in the element lengths");
  crc = crc32c::extend(crc, &stored_lengths_crc, sizeof stored_lengths_crc);
  if (total != in.size())
    fail("element lengths add up to " + std::to_string(total) + " bytes but " + std::to_string(in.size()) + " follow");
  crc = crc32c::extend(crc, in.data(), in.size());
  if (!crc32c::matches(t.masked_crc32c, crc32c::mask(crc))) fail("crc32c mismatch");

  std::vector<std::string> out;
  out.reserve(lengths.size());
  for (uint64_t length : lengths) {
    out.emplace_back(in.substr(0, length));
    in.remove_prefix(length);
  }
  return out;
}

}  // namespace unetind
