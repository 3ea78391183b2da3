// TensorFlow tensor bundles (src/io/tf_checkpoint*.cpp, tf_object_graph.cpp):
// the .index table (LevelDB blocks, snappy, the bundle header and entry
// protos), the data shard behind it (fixed-width and string tensors, TF2's
// object graph) and the import into model weights.
//
// Input: a 4-byte little-endian length L, L bytes of PREFIX.index, then the
// bytes of the data shard (written as each shard the index names, up to
// four). tests/fuzz/seed_corpora.py packs real checkpoints so.
#include <set>

#include "fuzz_support.h"
#include "io/checksums.h"
#include "unetind/error.h"
#include "unetind/tf_checkpoint.h"

// The element count of a shape, without wrapping around (-1 when past
// int64): what a tensor read must hold.
int64_t true_count(const unetind::Shape& shape) {
  unsigned __int128 n = 1;
  for (int64_t d : shape) {
    n *= static_cast<unsigned __int128>(d);
    if (n > INT64_MAX) return -1;
  }
  return static_cast<int64_t>(n);
}

// Checksums are not checked, so that mutations reach the parsers behind them.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  unetind::checksums::set_checked(false);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace unetind;
  if (size < 4) return 0;
  const size_t index_size = std::min<size_t>(size - 4, data[0] | data[1] << 8 | data[2] << 16 | size_t{data[3]} << 24);
  const std::string_view index = fuzz::as_text(data + 4, index_size);
  const std::string_view shard = fuzz::as_text(data + 4 + index_size, size - 4 - index_size);
  const std::string prefix = (fuzz::fresh_scratch_dir() / "model.ckpt-1").string();
  fuzz::write_bytes(prefix + ".index", index);
  try {
    const TfCheckpoint checkpoint(prefix);
    std::set<int32_t> shards;
    for (const TfTensorInfo& t : checkpoint.tensors())
      if (shards.size() < 4 && shards.insert(t.shard).second) fuzz::write_bytes(checkpoint.shard_path(t.shard), shard);
    for (const TfTensorInfo& t : checkpoint.tensors()) {
      try {
        switch (t.dtype) {
          case TfDtype::Float: {
            const Tensor v = checkpoint.read_float(t.name);
            if (v.shape != t.shape || v.numel() != true_count(t.shape)) fuzz::finding("'" + t.name + "' misread");
            break;
          }
          case TfDtype::Int64:
            if (static_cast<int64_t>(checkpoint.read_int64(t.name).size()) != true_count(t.shape))
              fuzz::finding("'" + t.name + "' misread");
            break;
          case TfDtype::String:
            if (static_cast<int64_t>(checkpoint.read_strings(t.name).size()) != shape_numel(t.shape))
              fuzz::finding("'" + t.name + "' misread");
            break;
          default:
            break;
        }
      } catch (const Error&) {
      }
    }
    try {
      tf2_variable_names(checkpoint);
    } catch (const Error&) {
    }
    import_tf_checkpoint(prefix, {}, true);
  } catch (const Error&) {
  }
  return 0;
}
