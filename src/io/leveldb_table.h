// LevelDB's table format (the ".index" file of a TensorFlow tensor bundle):
// data blocks of prefix-compressed key/value entries with restart points, an
// index block pointing at them, a metaindex block, and a 48-byte footer
// (metaindex and index block handles as varint64 pairs, zero padding, then
// the magic number). Every block is followed by a 5-byte trailer: a
// compression type byte and the masked crc32c of the block and that byte.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace unetind::leveldb_table {

constexpr uint64_t kMagic = 0xdb4775248b80fb57ull;
constexpr size_t kFooterSize = 48;
constexpr size_t kBlockTrailerSize = 5;
constexpr uint8_t kNoCompression = 0;
constexpr uint8_t kSnappyCompression = 1;

struct Entry {
  std::string key;
  std::string value;
};

// Every entry of the table held in `bytes` (the whole file), in key order.
// Block checksums are verified and snappy blocks decompressed; any defect
// throws an Error naming `path`.
std::vector<Entry> read_table(const std::string& path, std::string_view bytes);

}  // namespace unetind::leveldb_table
