// `unet-industrial inspect`: the tensors of a safetensors file or a TensorFlow
// checkpoint, one line each: name, dtype, shape (a TF2 checkpoint's rows:
// key, variable name, dtype, shape); for a weights file also its metadata
// and the operating threshold it carries.
#include <cstdio>

#include "commands.h"
#include "unetind/operating_threshold.h"
#include "unetind/safetensors.h"
#include "unetind/tf_checkpoint.h"

namespace unetind::cli {

namespace {

void print_row(const std::string& name, const std::string& dtype, const Shape& shape) {
  std::printf("%s\t%s\t%s\n", name.c_str(), dtype.c_str(), shape_to_string(shape).c_str());
}

}  // namespace

void register_inspect(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  CLI::App* cmd =
      app.add_subcommand("inspect", "List the tensors (name, dtype, shape) of a weights file or TF checkpoint");
  cmd->add_option("file", *path,
                  "A .safetensors file, or a TF checkpoint: prefix, .index file, `checkpoint` file, training or TF2 "
                  "checkpoint directory, SavedModel / TF-Hub directory")
      ->required();
  cmd->callback([path] {
    if (is_tf_checkpoint_path(*path)) {
      const TfCheckpoint checkpoint(*path);
      // A TF2 checkpoint's keys are object paths; the variable's name follows.
      const std::map<std::string, std::string> tf2_names = tf2_variable_names(checkpoint);
      for (const TfTensorInfo& t : checkpoint.tensors()) {
        auto it = tf2_names.find(t.name);
        print_row(it == tf2_names.end() ? t.name : t.name + "\t" + it->second, to_string(t.dtype), t.shape);
      }
      std::printf("%zu tensors in %s (%d shard(s))\n", checkpoint.tensors().size(), checkpoint.prefix().c_str(),
                  checkpoint.num_shards());
    } else {
      const SafetensorsFile file = read_safetensors(*path);
      for (const NamedTensor& t : file.tensors) print_row(t.name, file.stored_dtypes.at(t.name), t.tensor.shape);
      for (const auto& [key, value] : file.metadata) std::printf("metadata %s = %s\n", key.c_str(), value.c_str());
      if (const auto threshold = operating_threshold_from(file.metadata, *path))
        std::printf("operating threshold %s\n", describe(*threshold).c_str());
      else
        std::printf("operating threshold: none stored (evaluate --set-threshold sets one)\n");
      std::printf("%zu tensors in %s\n", file.tensors.size(), path->c_str());
    }
  });
}

}  // namespace unetind::cli
