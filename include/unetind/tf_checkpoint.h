// TensorFlow checkpoints (tensor bundles), read from the format's public
// description: PREFIX.index is a LevelDB-format table whose entry "" holds a
// BundleHeaderProto (shard count, endianness, version) and whose other
// entries map each tensor name to a BundleEntryProto (dtype, shape, shard,
// offset, size, masked crc32c). The bytes live in the data shards
// PREFIX.data-0000K-of-0000N. This is what tf.train.Saver writes
// (model.ckpt-2500.*) and what a SavedModel or TF-Hub module keeps under
// variables/variables.*.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "unetind/model.h"
#include "unetind/tensor.h"

namespace unetind {

// TensorFlow's DataType numbers (types.proto).
enum class TfDtype : int32_t {
  Invalid = 0,
  Float = 1,
  Double = 2,
  Int32 = 3,
  UInt8 = 4,
  Int16 = 5,
  Int8 = 6,
  String = 7,
  Complex64 = 8,
  Int64 = 9,
  Bool = 10,
  BFloat16 = 14,
  Complex128 = 18,
  Half = 19,
  Resource = 20,
  Variant = 21,
  UInt32 = 22,
  UInt64 = 23,
};
std::string to_string(TfDtype dtype);  // "DT_FLOAT"; a number without a name as "DT_<number>"

struct TfTensorInfo {
  std::string name;
  TfDtype dtype = TfDtype::Invalid;
  Shape shape;
  int32_t shard = 0;
  int64_t offset = 0;  // in the shard file
  int64_t size = 0;    // bytes
  uint32_t masked_crc32c = 0;
};

// The checkpoint prefix a user-given path stands for: a prefix itself
// (".../model.ckpt-2500", ".../variables/variables"), its ".index" file, a
// SavedModel or TF-Hub module directory (holding variables/variables.index),
// or a training directory whose `checkpoint` file names the latest
// checkpoint. Throws an Error naming the path when it is none of these.
std::string resolve_tf_checkpoint_prefix(const std::string& path);

class TfCheckpoint {
 public:
  // Reads and checks the whole index; data shards are opened as tensors are read.
  explicit TfCheckpoint(const std::string& path);

  const std::string& prefix() const { return prefix_; }
  std::string index_path() const { return prefix_ + ".index"; }
  std::string shard_path(int32_t shard) const;  // PREFIX.data-0000K-of-0000N
  int32_t num_shards() const { return num_shards_; }

  const std::vector<TfTensorInfo>& tensors() const { return tensors_; }  // in name order
  const TfTensorInfo* find(const std::string& name) const;

  // Reads a tensor and verifies its crc32c. Errors name the file and tensor.
  Tensor read_float(const std::string& name) const;                      // DT_FLOAT
  std::vector<std::string> read_strings(const std::string& name) const;  // DT_STRING, row-major

 private:
  const TfTensorInfo& get(const std::string& name, TfDtype dtype) const;
  std::string read_bytes(const TfTensorInfo& info) const;

  std::string prefix_;
  int32_t num_shards_ = 1;
  std::vector<TfTensorInfo> tensors_;
};

// A checkpoint of NVIDIA's UNet-Industrial turned into our parameters. The
// model tensors keep their TF names (UNet_v1/...); a prefix in front of them
// (a module's "module/") is stripped, training-only tensors (optimiser slots
// such as .../kernel/RMSProp_1, global_step, loss-scale state) are left out,
// and the rest must match the model exactly (match_parameters).
struct TfImport {
  Parameters parameters;
  std::string checkpoint_prefix;     // the resolved PREFIX
  std::string name_prefix;           // what was stripped, "" if nothing
  std::vector<std::string> skipped;  // training-only tensors left out
};
TfImport import_tf_checkpoint(const std::string& path, const ModelConfig& config);

}  // namespace unetind
