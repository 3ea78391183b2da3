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
#include <map>
#include <optional>
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
// checkpoint (tf.train.Saver's and tf.train.Checkpoint's alike), or that
// `checkpoint` file itself. Throws an Error naming the path when it is none
// of these.
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
  std::vector<int64_t> read_int64(const std::string& name) const;        // DT_INT64 (global_step)
  std::vector<std::string> read_strings(const std::string& name) const;  // DT_STRING, row-major

 private:
  const TfTensorInfo& get(const std::string& name, TfDtype dtype) const;
  std::string read_fixed_width(const std::string& name, TfDtype dtype, size_t element_size) const;
  std::string read_bytes(const TfTensorInfo& info) const;

  std::string prefix_;
  int32_t num_shards_ = 1;
  std::vector<TfTensorInfo> tensors_;
};

// TF2's object-based checkpoints (tf.train.Checkpoint) key each variable by
// its path in the saved object graph ("model/convs/0/kernel/.ATTRIBUTES/
// VARIABLE_VALUE"); the graph itself, the string tensor
// _CHECKPOINTABLE_OBJECT_GRAPH, records each variable's own name. Returns
// checkpoint key -> variable name for every variable there; empty for a TF1
// checkpoint (tf.train.Saver, SavedModel), which keys tensors by name.
std::map<std::string, std::string> tf2_variable_names(const TfCheckpoint& checkpoint);

// True when `path` is something TfCheckpoint opens rather than a weights file:
// a directory, a `checkpoint` file, an .index file, or a prefix with one.
bool is_tf_checkpoint_path(const std::string& path);

// A checkpoint of NVIDIA's UNet-Industrial turned into our parameters. Tensors
// are known by their TF variable names (a TF2 checkpoint's keys are mapped to
// them through its object graph). The model tensors keep their names
// (UNet_v1/...); a prefix in front of them (a module's "module/") is stripped,
// training-only tensors (optimiser slots such as .../kernel/RMSProp_1,
// global_step, loss-scale state) are left out, and the rest must match the
// model exactly (match_parameters).
struct TfImport {
  Parameters parameters;
  std::string checkpoint_prefix;     // the resolved PREFIX
  std::string name_prefix;           // what was stripped, "" if nothing
  std::vector<std::string> skipped;  // training-only tensors left out, by checkpoint key
  // With `with_optimizer_state`: TF1 RMSProp's slots of the model's
  // variables, renamed from where TF puts them ("optimizers/UNet_v1/.../
  // kernel/RMSProp_1" in NVIDIA's graph) to "<parameter>/RMSProp[_N]", the
  // names RmsProp::load_state takes; and the global step, if saved.
  std::vector<NamedTensor> optimizer_slots;
  std::optional<int64_t> global_step;
};
TfImport import_tf_checkpoint(const std::string& path, const ModelConfig& config, bool with_optimizer_state = false);

// Weights for a `config` model from a safetensors weights file or any
// TensorFlow checkpoint import_tf_checkpoint reads. A weights file whose
// metadata names another variant or activation is an Error naming it.
Parameters load_weights(const std::string& path, const ModelConfig& config);

}  // namespace unetind
