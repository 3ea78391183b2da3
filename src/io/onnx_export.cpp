#include "unetind/onnx_export.h"

#include "unetind/atomic_file.h"
#include "unetind/error.h"

#ifdef UNETIND_HAVE_ONNX
#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <cstring>
#include <initializer_list>
#endif

namespace unetind {

#ifdef UNETIND_HAVE_ONNX

namespace {

constexpr const char* kInputName = "images";
constexpr const char* kOutputName = "probabilities";
constexpr const char* kBatchParam = "N";

void set_nhwc_type(onnx::ValueInfoProto* value, const std::string& name, int batch, int channels) {
  value->set_name(name);
  onnx::TypeProto_Tensor* tensor = value->mutable_type()->mutable_tensor_type();
  tensor->set_elem_type(onnx::TensorProto::FLOAT);
  onnx::TensorShapeProto* shape = tensor->mutable_shape();
  if (batch > 0)
    shape->add_dim()->set_dim_value(batch);
  else
    shape->add_dim()->set_dim_param(kBatchParam);
  for (int d : {kModelImageSize, kModelImageSize, channels}) shape->add_dim()->set_dim_value(d);
}

onnx::AttributeProto* add_attribute(onnx::NodeProto* node, const std::string& name,
                                    onnx::AttributeProto::AttributeType type) {
  onnx::AttributeProto* a = node->add_attribute();
  a->set_name(name);
  a->set_type(type);
  return a;
}

void set_ints(onnx::NodeProto* node, const std::string& name, std::initializer_list<int64_t> values) {
  onnx::AttributeProto* a = add_attribute(node, name, onnx::AttributeProto::INTS);
  for (int64_t v : values) a->add_ints(v);
}

void set_string(onnx::NodeProto* node, const std::string& name, const std::string& value) {
  add_attribute(node, name, onnx::AttributeProto::STRING)->set_s(value);
}

class OnnxGraphBuilder {
 public:
  explicit OnnxGraphBuilder(onnx::GraphProto* graph) : graph_(graph) {}

  onnx::NodeProto* node(const std::string& op, const std::string& name, std::initializer_list<std::string> inputs,
                        const std::string& output) {
    onnx::NodeProto* n = graph_->add_node();
    n->set_op_type(op);
    n->set_name(name);
    for (const std::string& in : inputs) n->add_input(in);
    n->add_output(output);
    return n;
  }

  void initializer(const std::string& name, const Shape& shape, const std::vector<float>& values) {
    onnx::TensorProto* t = graph_->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : shape) t->add_dims(d);
    t->set_raw_data(std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float)));
  }

 private:
  onnx::GraphProto* graph_;
};

// TF kernels are HWIO [kh, kw, in, out]; ONNX Conv wants OIHW.
std::vector<float> hwio_to_oihw(const Tensor& kernel) {
  const int64_t kh = kernel.shape[0], kw = kernel.shape[1], ci = kernel.shape[2], co = kernel.shape[3];
  std::vector<float> out(kernel.data.size());
  for (int64_t h = 0; h < kh; ++h)
    for (int64_t w = 0; w < kw; ++w)
      for (int64_t i = 0; i < ci; ++i)
        for (int64_t o = 0; o < co; ++o)
          out[((o * ci + i) * kh + h) * kw + w] = kernel.data[((h * kw + w) * ci + i) * co + o];
  return out;
}

onnx::ModelProto build_model(const Parameters& params, const OnnxExportOptions& options) {
  const Graph graph = build_graph(params.config);
  const std::vector<NamedTensor> tensors = match_parameters(params.config, params.tensors, "parameters to export");

  onnx::ModelProto model;
  model.set_ir_version(onnx::IR_VERSION);
  model.set_producer_name("unet-industrial");
  model.set_producer_version(UNETIND_VERSION);
  model.set_doc_string("UNet-Industrial (" + to_string(params.config.variant) + ", " +
                       to_string(params.config.activation) +
                       "): images N x 512 x 512 x 1 scaled to [-1, 1] in, defect probabilities N x 512 x 512 x 1 out");
  onnx::OperatorSetIdProto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(options.opset);

  onnx::GraphProto* g = model.mutable_graph();
  g->set_name("UNet_v1");
  set_nhwc_type(g->add_input(), kInputName, options.batch, 1);
  set_nhwc_type(g->add_output(), kOutputName, options.batch, 1);
  OnnxGraphBuilder b(g);

  // The x2 nearest Resize's scales, shared by every upsampling.
  const std::string scales = "upsample_scales";
  b.initializer(scales, {4}, {1.f, 1.f, 2.f, 2.f});

  std::vector<std::string> out(graph.nodes.size());  // each graph node's output tensor (NCHW)
  int pool_count = 0, upsample_count = 0, concat_count = 0;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& n = graph.nodes[i];
    switch (n.kind) {
      case OpKind::Input:
        out[i] = "images_nchw";
        set_ints(b.node("Transpose", "to_nchw", {kInputName}, out[i]), "perm", {0, 3, 1, 2});
        break;
      case OpKind::Conv2d: {
        const ConvSpec& c = graph.convs[static_cast<size_t>(n.conv)];
        const Tensor& kernel = tensors[2 * static_cast<size_t>(n.conv)].tensor;
        const Tensor& bias = tensors[2 * static_cast<size_t>(n.conv) + 1].tensor;
        const std::string weight_name = c.scope + "/kernel_oihw";
        b.initializer(weight_name, {c.out_channels, c.in_channels, c.kernel, c.kernel}, hwio_to_oihw(kernel));
        b.initializer(c.bias_name(), {c.out_channels}, bias.data);
        // TF's SAME: k - 1 padding rows, the odd one at the bottom / right.
        const int64_t before = (c.kernel - 1) / 2, after = c.kernel - 1 - before;
        const std::string conv_out = c.scope + "/BiasAdd";
        onnx::NodeProto* conv =
            b.node("Conv", c.scope + "/Conv2D", {out[n.inputs[0]], weight_name, c.bias_name()}, conv_out);
        set_ints(conv, "kernel_shape", {c.kernel, c.kernel});
        set_ints(conv, "strides", {1, 1});
        set_ints(conv, "dilations", {1, 1});
        set_ints(conv, "pads", {before, before, after, after});
        out[i] = conv_out;
        if (c.activation == Activation::Relu) {
          out[i] = c.scope + "/Relu";
          b.node("Relu", out[i], {conv_out}, out[i]);
        } else if (c.activation == Activation::LeakyRelu) {
          out[i] = c.scope + "/LeakyRelu";
          add_attribute(b.node("LeakyRelu", out[i], {conv_out}, out[i]), "alpha", onnx::AttributeProto::FLOAT)
              ->set_f(kLeakyReluAlpha);
        }
        break;
      }
      case OpKind::MaxPool2x2: {
        out[i] = "max_pool_" + std::to_string(++pool_count);
        onnx::NodeProto* pool = b.node("MaxPool", out[i], {out[n.inputs[0]]}, out[i]);
        set_ints(pool, "kernel_shape", {2, 2});
        set_ints(pool, "strides", {2, 2});
        break;
      }
      case OpKind::Upsample2x: {
        out[i] = "upsample_" + std::to_string(++upsample_count);
        onnx::NodeProto* resize = b.node("Resize", out[i], {out[n.inputs[0]], "", scales}, out[i]);
        set_string(resize, "mode", "nearest");
        set_string(resize, "coordinate_transformation_mode", "asymmetric");
        set_string(resize, "nearest_mode", "floor");
        break;
      }
      case OpKind::Concat: {
        out[i] = "concat_" + std::to_string(++concat_count);
        onnx::NodeProto* concat = b.node("Concat", out[i], {out[n.inputs[0]], out[n.inputs[1]]}, out[i]);
        add_attribute(concat, "axis", onnx::AttributeProto::INT)->set_i(1);
        break;
      }
    }
  }
  b.node("Sigmoid", "sigmoid", {out[static_cast<size_t>(graph.output)]}, "probabilities_nchw");
  set_ints(b.node("Transpose", "to_nhwc", {"probabilities_nchw"}, kOutputName), "perm", {0, 2, 3, 1});
  return model;
}

}  // namespace

bool onnx_export_available() { return true; }

void export_onnx(const Parameters& params, const std::string& path, const OnnxExportOptions& options) {
  if (options.opset < kOnnxMinOpset || options.opset > kOnnxMaxOpset)
    throw_file_error(path, "ONNX opset " + std::to_string(options.opset) + " is not supported (" +
                               std::to_string(kOnnxMinOpset) + ".." + std::to_string(kOnnxMaxOpset) + ")");
  if (options.batch < 0) throw_file_error(path, "batch must be positive, or 0 for dynamic");
  const onnx::ModelProto model = build_model(params, options);
  try {
    onnx::checker::check_model(model);
    // Strict inference also proves the declared output shape is what the graph computes.
    onnx::ModelProto inferred = model;
    onnx::shape_inference::InferShapes(inferred, onnx::OpSchemaRegistry::Instance(),
                                       onnx::ShapeInferenceOptions(/*check_type=*/true, /*strict_mode=*/1));
  } catch (const std::exception& e) {
    throw_file_error(path, std::string("the ONNX checker rejects the exported model: ") + e.what());
  }
  std::string bytes;
  if (!model.SerializeToString(&bytes)) throw_file_error(path, "cannot serialise the ONNX model");
  write_file_atomic(path, bytes);
}

#else

bool onnx_export_available() { return false; }

void export_onnx(const Parameters&, const std::string& path, const OnnxExportOptions&) {
  throw_file_error(path, "this build has no ONNX export (libonnx-dev was not found when it was configured)");
}

#endif

}  // namespace unetind
