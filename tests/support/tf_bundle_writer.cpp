#include "tf_bundle_writer.h"

#include <snappy.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "io/crc32c.h"
#include "io/leveldb_table.h"

namespace unetind::test {

namespace {

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

template <typename T>
void put_raw(std::string& out, T v) {
  char buf[sizeof(T)];
  std::memcpy(buf, &v, sizeof(T));
  out.append(buf, sizeof(T));
}

void put_tag(std::string& out, uint32_t field, uint32_t wire_type) { put_varint(out, (field << 3) | wire_type); }

void put_message(std::string& out, uint32_t field, const std::string& message) {
  put_tag(out, field, 2);
  put_varint(out, message.size());
  out += message;
}

// BundleEntryProto; fields at their default (shard 0, offset 0) are left out,
// as protobuf serialisation does.
std::string encode_entry(TfDtype dtype, const Shape& shape, int shard, uint64_t offset, uint64_t size, uint32_t crc) {
  std::string shape_msg;
  for (int64_t d : shape) {
    std::string dim;
    put_tag(dim, 1, 0);
    put_varint(dim, static_cast<uint64_t>(d));
    put_message(shape_msg, 2, dim);
  }
  std::string e;
  put_tag(e, 1, 0);
  put_varint(e, static_cast<uint64_t>(dtype));
  put_message(e, 2, shape_msg);
  if (shard != 0) {
    put_tag(e, 3, 0);
    put_varint(e, static_cast<uint64_t>(shard));
  }
  if (offset != 0) {
    put_tag(e, 4, 0);
    put_varint(e, offset);
  }
  put_tag(e, 5, 0);
  put_varint(e, size);
  put_tag(e, 6, 5);
  put_raw(e, crc32c::mask(crc));
  return e;
}

std::string encode_header(int num_shards) {
  std::string version;
  put_tag(version, 1, 0);  // producer
  put_varint(version, 1);
  std::string h;
  put_tag(h, 1, 0);
  put_varint(h, static_cast<uint64_t>(num_shards));
  put_message(h, 3, version);
  return h;
}

class BlockBuilder {
 public:
  explicit BlockBuilder(int restart_interval) : restart_interval_(restart_interval) {}

  void add(const std::string& key, const std::string& value) {
    size_t shared = 0;
    if (count_ % restart_interval_ == 0) {
      restarts_.push_back(static_cast<uint32_t>(buffer_.size()));
    } else {
      while (shared < std::min(key.size(), last_key_.size()) && key[shared] == last_key_[shared]) ++shared;
    }
    put_varint(buffer_, shared);
    put_varint(buffer_, key.size() - shared);
    put_varint(buffer_, value.size());
    buffer_.append(key, shared);
    buffer_ += value;
    last_key_ = key;
    ++count_;
  }

  size_t size() const { return buffer_.size(); }
  bool empty() const { return count_ == 0; }
  const std::string& last_key() const { return last_key_; }

  std::string finish() {
    std::string out = buffer_;
    std::vector<uint32_t> restarts = restarts_.empty() ? std::vector<uint32_t>{0} : restarts_;
    for (uint32_t r : restarts) put_raw(out, r);
    put_raw(out, static_cast<uint32_t>(restarts.size()));
    *this = BlockBuilder(restart_interval_);
    return out;
  }

 private:
  int restart_interval_;
  std::string buffer_;
  std::vector<uint32_t> restarts_;
  std::string last_key_;
  int count_ = 0;
};

std::string put_handle(uint64_t offset, uint64_t size) {
  std::string h;
  put_varint(h, offset);
  put_varint(h, size);
  return h;
}

// Appends block + trailer to `file` and returns the block's handle.
std::string append_block(std::string& file, const std::string& contents, bool snappy) {
  std::string stored = contents;
  uint8_t type = leveldb_table::kNoCompression;
  if (snappy) {
    snappy::Compress(contents.data(), contents.size(), &stored);
    type = leveldb_table::kSnappyCompression;
  }
  const std::string handle = put_handle(file.size(), stored.size());
  file += stored;
  file.push_back(static_cast<char>(type));
  put_raw(file, crc32c::mask(crc32c::extend(crc32c::value(stored), &type, 1)));
  return handle;
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

}  // namespace

void TfBundleWriter::add_float(const std::string& name, const Tensor& tensor) {
  std::string bytes(reinterpret_cast<const char*>(tensor.data.data()), tensor.data.size() * sizeof(float));
  const uint32_t crc = crc32c::value(bytes);
  items_.push_back({name, TfDtype::Float, tensor.shape, std::move(bytes), crc});
}

void TfBundleWriter::add_int64(const std::string& name, const Shape& shape, const std::vector<int64_t>& values) {
  std::string bytes(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(int64_t));
  const uint32_t crc = crc32c::value(bytes);
  items_.push_back({name, TfDtype::Int64, shape, std::move(bytes), crc});
}

// tensor_bundle.cc's WriteStringTensor: varint lengths, their masked crc
// (computed over each length as a uint32), then the bytes.
void TfBundleWriter::add_strings(const std::string& name, const Shape& shape, const std::vector<std::string>& values) {
  std::string bytes;
  uint32_t crc = 0;
  for (const std::string& v : values) {
    put_varint(bytes, v.size());
    const auto length = static_cast<uint32_t>(v.size());
    crc = crc32c::extend(crc, &length, sizeof length);
  }
  const uint32_t lengths_crc = crc32c::mask(crc);
  put_raw(bytes, lengths_crc);
  crc = crc32c::extend(crc, &lengths_crc, sizeof lengths_crc);
  for (const std::string& v : values) {
    bytes += v;
    crc = crc32c::extend(crc, v.data(), v.size());
  }
  items_.push_back({name, TfDtype::String, shape, std::move(bytes), crc});
}

void TfBundleWriter::write(const std::string& prefix, const BundleWriteOptions& options) const {
  std::vector<const Item*> sorted;
  for (const Item& item : items_) sorted.push_back(&item);
  std::sort(sorted.begin(), sorted.end(), [](const Item* a, const Item* b) { return a->name < b->name; });

  std::vector<std::string> shards(static_cast<size_t>(options.num_shards));
  std::string file;
  BlockBuilder data(options.restart_interval);
  BlockBuilder index(1);
  auto flush = [&] {
    const std::string last = data.last_key();
    index.add(last, append_block(file, data.finish(), options.snappy));
  };
  data.add("", encode_header(options.num_shards));
  for (size_t i = 0; i < sorted.size(); ++i) {
    const Item& item = *sorted[i];
    const int shard = static_cast<int>(i % shards.size());
    std::string& shard_bytes = shards[static_cast<size_t>(shard)];
    data.add(item.name, encode_entry(item.dtype, item.shape, shard, shard_bytes.size(), item.bytes.size(), item.crc));
    shard_bytes += item.bytes;
    if (data.size() >= options.block_size) flush();
  }
  if (!data.empty()) flush();

  const std::string metaindex_handle = append_block(file, BlockBuilder(1).finish(), false);
  const std::string index_handle = append_block(file, index.finish(), false);
  std::string footer = metaindex_handle + index_handle;
  footer.resize(leveldb_table::kFooterSize - 8, '\0');
  put_raw(footer, leveldb_table::kMagic);
  file += footer;

  write_bytes(prefix + ".index", file);
  for (size_t k = 0; k < shards.size(); ++k) {
    char suffix[64];
    std::snprintf(suffix, sizeof suffix, ".data-%05zu-of-%05zu", k, shards.size());
    write_bytes(prefix + suffix, shards[k]);
  }
}

}  // namespace unetind::test
