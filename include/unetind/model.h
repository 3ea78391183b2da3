// TinyUNet as in SPEC.md section 1: its configuration, its parameters (TF
// variable names, HWIO kernels) and its graph. This header describes the
// network; backends (backend.h) execute it.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "unetind/safetensors.h"
#include "unetind/tensor.h"

namespace unetind {

enum class Variant { TinyUNet, Original };
enum class Activation { None, Relu, LeakyRelu };  // leaky ReLU alpha is 0.2
enum class Initializer { HeNormal, HeUniform, GlorotNormal, GlorotUniform, Orthogonal };

constexpr float kLeakyReluAlpha = 0.2f;
constexpr int kModelImageSize = 512;  // the size the reference crops or pads to

struct ModelConfig {
  Variant variant = Variant::TinyUNet;
  Activation activation = Activation::Relu;
};

std::string to_string(Variant v);          // "tinyUNet" | "original"
std::string to_string(Activation a);       // "relu" | "leaky_relu"
std::string to_string(Initializer i);      // "he_normal" ...
Variant parse_variant(const std::string& s);
Activation parse_activation(const std::string& s);
Initializer parse_initializer(const std::string& s);

// One convolution's parameters: kernel [k, k, in, out] (HWIO) and bias [out].
struct ConvSpec {
  std::string scope;  // e.g. "UNet_v1/input_block/conv2d"
  int kernel = 3;
  int in_channels = 0;
  int out_channels = 0;
  Activation activation = Activation::Relu;  // None for the final 1x1
  std::string kernel_name() const { return scope + "/kernel"; }
  std::string bias_name() const { return scope + "/bias"; }
};

// The network as a list of nodes in execution order. Node 0 is the input
// (N x H x W x 1, already scaled to [-1, 1] and sized to the model size).
enum class OpKind { Input, Conv2d, MaxPool2x2, Upsample2x, Concat };

struct Node {
  OpKind kind = OpKind::Input;
  std::vector<int> inputs;  // node indices; Concat: [decoder, skip]
  int conv = -1;            // Conv2d: index into Graph::convs
  int channels = 0;         // output channels
  int scale = 1;            // output spatial size = input size / scale
};

struct Graph {
  std::vector<ConvSpec> convs;
  std::vector<Node> nodes;
  int output = -1;  // the logits node (1 channel)
};

Graph build_graph(const ModelConfig& config);
int64_t parameter_count(const Graph& graph);
// Forward multiply-adds x 2 for one image of height x width (36.7 GFLOP for
// TinyUNet at 512x512).
double forward_flops(const Graph& graph, int height, int width);

struct Int8Calibration;  // calibration.h

// Parameters in the order [conv0.kernel, conv0.bias, conv1.kernel, ...].
struct Parameters {
  ModelConfig config;
  std::vector<NamedTensor> tensors;
  std::string source = "";  // the file they were loaded from (for messages), or ""
  // The file's INT8 calibration, if it has one (calibration.h).
  std::shared_ptr<const Int8Calibration> int8_calibration = nullptr;
};

Parameters init_parameters(const ModelConfig& config, Initializer init, uint64_t seed);

// Loads and checks every tensor by name, shape and value (finite); the variant and activation
// come from the file's metadata (defaults: tinyUNet, relu). Errors name the
// file and the tensor.
Parameters load_parameters(const std::string& path);
// The same for a file already read; `path` names it in errors.
Parameters parameters_from(const SafetensorsFile& file, const std::string& path);
void save_parameters(const std::string& path, const Parameters& params,
                     std::map<std::string, std::string> extra_metadata = {});

// Checks names, shapes and values (finite) of `tensors` against the graph of
// `config`, in any order, and returns them in parameter order. `source`
// names the origin in errors.
std::vector<NamedTensor> match_parameters(const ModelConfig& config, const std::vector<NamedTensor>& tensors,
                                          const std::string& source);

// TF's resize_image_with_crop_or_pad on one channel: centre crop or zero pad
// each axis from (in_width, in_height) to (out_width, out_height). Applied
// with the sizes swapped it maps a model output back onto the input image.
std::vector<float> crop_or_pad(const std::vector<float>& values, int in_width, int in_height, int out_width,
                               int out_height);

// Input preparation, SPEC.md section 1: x/127.5 - 1, then crop_or_pad to
// size x size (so padding is 0 in the scaled domain, mid-gray).
std::vector<float> prepare_input(const std::vector<float>& pixels, int width, int height, int size);

}  // namespace unetind
