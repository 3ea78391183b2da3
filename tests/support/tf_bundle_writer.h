// A minimal TensorFlow tensor-bundle writer for tests: it writes PREFIX.index
// (a LevelDB-format table) and PREFIX.data-0000K-of-0000N the way
// tensor_bundle.cc does, with knobs that make the reader walk every path:
// several shards, several data blocks, restart intervals, snappy blocks.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "unetind/tensor.h"
#include "unetind/tf_checkpoint.h"

namespace unetind::test {

struct BundleWriteOptions {
  int num_shards = 1;         // tensor i (in name order) goes to shard i % num_shards
  bool snappy = false;        // snappy-compress the data blocks
  size_t block_size = 4096;   // a data block is closed once its entries reach this many bytes
  int restart_interval = 16;  // keys between restart points in data blocks
};

class TfBundleWriter {
 public:
  void add_float(const std::string& name, const Tensor& tensor);
  void add_int64(const std::string& name, const Shape& shape, const std::vector<int64_t>& values);
  void add_strings(const std::string& name, const Shape& shape, const std::vector<std::string>& values);

  void write(const std::string& prefix, const BundleWriteOptions& options = {}) const;

 private:
  struct Item {
    std::string name;
    TfDtype dtype;
    Shape shape;
    std::string bytes;
    uint32_t crc;  // unmasked crc32c of what the entry covers
  };
  std::vector<Item> items_;
};

}  // namespace unetind::test
