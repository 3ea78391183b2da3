#include <snappy.h>

#include <cstring>

#include "io/crc32c.h"
#include "io/leveldb_table.h"
#include "io/wire_format.h"
#include "unetind/error.h"

namespace unetind::leveldb_table {

namespace {

struct BlockHandle {
  uint64_t offset = 0;
  uint64_t size = 0;
};

std::string describe(const BlockHandle& h) {
  return "block at offset " + std::to_string(h.offset) + " (" + std::to_string(h.size) + " bytes)";
}

BlockHandle decode_handle(const std::string& path, std::string_view& in, const std::string& what) {
  try {
    BlockHandle h;
    h.offset = wire::read_varint(in);
    h.size = wire::read_varint(in);
    return h;
  } catch (const Error& e) {
    throw_file_error(path, "bad " + what + " block handle: " + e.what());
  }
}

// The block's contents, checked against its trailer and decompressed.
std::string read_block(const std::string& path, std::string_view file, const BlockHandle& h) {
  const uint64_t limit = file.size() - kFooterSize;
  if (h.offset > limit || h.size > limit - h.offset || kBlockTrailerSize > limit - h.offset - h.size)
    throw_file_error(path, describe(h) + " runs past the end of the table (" + std::to_string(file.size()) +
                               " bytes; truncated file?)");
  std::string_view raw = file.substr(h.offset, h.size);
  const auto type = static_cast<uint8_t>(file[h.offset + h.size]);
  uint32_t stored;
  std::memcpy(&stored, file.data() + h.offset + h.size + 1, 4);
  const uint32_t actual = crc32c::extend(crc32c::value(raw), &type, 1);
  if (!crc32c::matches(crc32c::unmask(stored), actual))
    throw_file_error(path, describe(h) + ": crc32c mismatch (stored " + std::to_string(crc32c::unmask(stored)) +
                               ", computed " + std::to_string(actual) + ")");
  if (type == kNoCompression) return std::string(raw);
  if (type == kSnappyCompression) {
    std::string out;
    if (!snappy::Uncompress(raw.data(), raw.size(), &out))
      throw_file_error(path, describe(h) + ": corrupt snappy data");
    return out;
  }
  throw_file_error(path, describe(h) + ": unknown compression type " + std::to_string(type));
}

[[noreturn]] void fail_block(const std::string& path, const std::string& what, const std::string& why) {
  throw_file_error(path, "corrupt " + what + " block: " + why);
}

// Appends the block's entries to `out`, undoing the key prefix compression.
void parse_block(const std::string& path, const std::string& block, const std::string& what, std::vector<Entry>& out) {
  if (block.size() < 4) fail_block(path, what, "shorter than its restart count");
  uint32_t num_restarts;
  std::memcpy(&num_restarts, block.data() + block.size() - 4, 4);
  if (num_restarts == 0 || num_restarts > (block.size() - 4) / 4)
    fail_block(path, what, "bad restart count " + std::to_string(num_restarts));
  const size_t entries_end = block.size() - 4 - 4 * static_cast<size_t>(num_restarts);
  for (uint32_t i = 0; i < num_restarts; ++i) {
    uint32_t restart;
    std::memcpy(&restart, block.data() + entries_end + 4 * i, 4);
    if (restart > entries_end || (restart == entries_end && entries_end != 0))
      fail_block(path, what, "restart point " + std::to_string(restart) + " out of range");
  }

  std::string_view in(block.data(), entries_end);
  std::string key;
  while (!in.empty()) {
    uint64_t shared = 0;
    std::string_view key_delta;
    std::string_view value;
    try {
      shared = wire::read_varint(in);
      const uint64_t non_shared = wire::read_varint(in);
      const uint64_t value_size = wire::read_varint(in);
      key_delta = wire::read_bytes(in, non_shared);
      value = wire::read_bytes(in, value_size);
    } catch (const Error& e) {
      fail_block(path, what, e.what());
    }
    if (shared > key.size())
      fail_block(path, what,
                 "entry shares " + std::to_string(shared) + " bytes of a " + std::to_string(key.size()) +
                     "-byte previous key");
    key.resize(shared);
    key += key_delta;
    out.push_back({key, std::string(value)});
  }
}

}  // namespace

std::vector<Entry> read_table(const std::string& path, std::string_view bytes) {
  if (bytes.size() < kFooterSize)
    throw_file_error(path, "only " + std::to_string(bytes.size()) + " bytes, shorter than the " +
                               std::to_string(kFooterSize) + "-byte table footer (truncated file?)");
  std::string_view footer = bytes.substr(bytes.size() - kFooterSize);
  uint64_t magic;
  std::memcpy(&magic, footer.data() + kFooterSize - 8, 8);
  if (magic != kMagic)
    throw_file_error(path, "bad table magic number (not a TensorFlow checkpoint index, or truncated)");
  decode_handle(path, footer, "metaindex");  // TF bundles keep nothing there
  const BlockHandle index_handle = decode_handle(path, footer, "index");

  std::vector<Entry> index;
  parse_block(path, read_block(path, bytes, index_handle), "index", index);
  std::vector<Entry> entries;
  for (const Entry& e : index) {
    std::string_view handle_bytes = e.value;
    const BlockHandle h = decode_handle(path, handle_bytes, "data");
    parse_block(path, read_block(path, bytes, h), "data", entries);
  }
  for (size_t i = 1; i < entries.size(); ++i)
    if (!(entries[i - 1].key < entries[i].key))
      throw_file_error(path, "keys out of order: '" + entries[i].key + "' follows '" + entries[i - 1].key + "'");
  return entries;
}

}  // namespace unetind::leveldb_table
