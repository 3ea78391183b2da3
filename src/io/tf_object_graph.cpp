// TF2 checkpoints' object graph: the TrackableObjectGraph proto
// (trackable_object_graph.proto) that tf.train.Checkpoint stores as the string
// tensor _CHECKPOINTABLE_OBJECT_GRAPH. Each node's attributes name the
// checkpoint key of a value the node saved and, for a variable, the
// variable's own name (full_name).
#include "io/wire_format.h"
#include "unetind/error.h"
#include "unetind/tf_checkpoint.h"

namespace unetind {

namespace {

constexpr const char* kObjectGraphKey = "_CHECKPOINTABLE_OBJECT_GRAPH";
// TrackableObjectGraph.nodes, TrackableObject.attributes, SerializedTensor fields.
constexpr uint32_t kGraphNodes = 1, kObjectAttributes = 2;
constexpr uint32_t kTensorName = 1, kTensorFullName = 2, kTensorCheckpointKey = 3;
constexpr std::string_view kVariableValue = "VARIABLE_VALUE";

void add_variables(std::string_view object, std::map<std::string, std::string>& names) {
  wire::MessageReader node(object);
  while (node.next()) {
    if (node.field() != kObjectAttributes) {
      node.skip();
      continue;
    }
    std::string_view name, full_name, key;
    wire::MessageReader tensor(node.bytes());
    while (tensor.next()) {
      switch (tensor.field()) {
        case kTensorName: name = tensor.bytes(); break;
        case kTensorFullName: full_name = tensor.bytes(); break;
        case kTensorCheckpointKey: key = tensor.bytes(); break;
        default: tensor.skip();
      }
    }
    if (name == kVariableValue && !full_name.empty() && !key.empty()) names[std::string(key)] = full_name;
  }
}

}  // namespace

std::map<std::string, std::string> tf2_variable_names(const TfCheckpoint& checkpoint) {
  std::map<std::string, std::string> names;
  if (!checkpoint.find(kObjectGraphKey)) return names;
  const std::vector<std::string> graph = checkpoint.read_strings(kObjectGraphKey);
  if (graph.size() != 1)
    throw_file_error(checkpoint.index_path(), std::string(kObjectGraphKey) + " holds " +
                                                  std::to_string(graph.size()) + " strings, expected one");
  try {
    wire::MessageReader r(graph.front());
    while (r.next()) {
      if (r.field() == kGraphNodes)
        add_variables(r.bytes(), names);
      else
        r.skip();
    }
  } catch (const Error& e) {
    throw_file_error(checkpoint.shard_path(checkpoint.find(kObjectGraphKey)->shard),
                     std::string("bad object graph in ") + kObjectGraphKey + ": " + e.what());
  }
  return names;
}

}  // namespace unetind
