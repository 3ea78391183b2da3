// ONNX export: the checker accepts the model, its interface and the ops that
// must mean exactly our function are as documented, and OpenCV's DNN module
// running it gives what `predict` gives on the DAGM fixture images.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "test_util.h"
#include "unetind/atomic_file.h"
#include "unetind/error.h"
#include "unetind/model.h"
#include "unetind/npy.h"
#include "unetind/onnx_export.h"
#include "unetind/png.h"

#ifdef UNETIND_HAVE_ONNX
#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#endif
#ifdef UNETIND_HAVE_OPENCV_DNN
#include <opencv2/dnn.hpp>
#endif

namespace unetind {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

#define REQUIRE_ONNX() \
  if (!onnx_export_available()) GTEST_SKIP() << "built without libonnx-dev: no ONNX export"

Parameters test_parameters(Activation activation = Activation::Relu) {
  return init_parameters(ModelConfig{Variant::TinyUNet, activation}, Initializer::HeUniform, /*seed=*/77);
}

TEST(OnnxExport, RejectsUnsupportedOptionsWithoutWriting) {
  REQUIRE_ONNX();
  TempDir tmp;
  const Parameters params = test_parameters();
  for (const OnnxExportOptions& bad : {OnnxExportOptions{1, 12}, OnnxExportOptions{1, 18}, OnnxExportOptions{-1, 13}}) {
    try {
      export_onnx(params, tmp.str("m.onnx"), bad);
      ADD_FAILURE() << "accepted batch " << bad.batch << " opset " << bad.opset;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(tmp.str("m.onnx")), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(tmp.str("m.onnx")));
  }
  Parameters wrong = params;
  wrong.tensors.pop_back();
  EXPECT_THROW(export_onnx(wrong, tmp.str("m.onnx")), Error);
}

#ifdef UNETIND_HAVE_ONNX

onnx::ModelProto read_model(const std::string& path) {
  onnx::ModelProto model;
  EXPECT_TRUE(model.ParseFromString(read_file(path))) << path;
  return model;
}

std::vector<int64_t> ints_attribute(const onnx::NodeProto& node, const std::string& name) {
  for (const auto& a : node.attribute())
    if (a.name() == name) return {a.ints().begin(), a.ints().end()};
  return {};
}

std::string string_attribute(const onnx::NodeProto& node, const std::string& name) {
  for (const auto& a : node.attribute())
    if (a.name() == name) return a.s();
  return "";
}

// "N" for a dynamic dimension.
std::vector<std::string> dims(const onnx::ValueInfoProto& v) {
  std::vector<std::string> out;
  for (const auto& d : v.type().tensor_type().shape().dim())
    out.push_back(d.has_dim_param() ? d.dim_param() : std::to_string(d.dim_value()));
  return out;
}

TEST(OnnxExport, CheckerAcceptsEveryBatchAndOpset) {
  REQUIRE_ONNX();
  TempDir tmp;
  const Parameters params = test_parameters();
  for (int opset = kOnnxMinOpset; opset <= kOnnxMaxOpset; ++opset) {
    for (int batch : {0, 1, 3}) {
      SCOPED_TRACE("opset " + std::to_string(opset) + ", batch " + std::to_string(batch));
      const std::string path = tmp.str("m" + std::to_string(opset) + "_" + std::to_string(batch) + ".onnx");
      export_onnx(params, path, {batch, opset});
      EXPECT_NO_THROW(onnx::checker::check_model(path));
      const onnx::ModelProto model = read_model(path);
      ASSERT_EQ(model.opset_import_size(), 1);
      EXPECT_EQ(model.opset_import(0).version(), opset);
      const std::string n = batch == 0 ? "N" : std::to_string(batch);
      ASSERT_EQ(model.graph().input_size(), 1);
      ASSERT_EQ(model.graph().output_size(), 1);
      EXPECT_EQ(model.graph().input(0).name(), "images");
      EXPECT_EQ(model.graph().output(0).name(), "probabilities");
      EXPECT_EQ(dims(model.graph().input(0)), (std::vector<std::string>{n, "512", "512", "1"}));
      EXPECT_EQ(dims(model.graph().output(0)), (std::vector<std::string>{n, "512", "512", "1"}));
    }
  }
}

// The spellings that pin our function down for every runtime: TF's SAME
// padding, pixel-replicating upsampling, [decoder, skip] concatenation and
// OIHW kernels equal to the HWIO ones transposed.
TEST(OnnxExport, OpsSpellOutOurFunction) {
  REQUIRE_ONNX();
  TempDir tmp;
  const Parameters params = test_parameters(Activation::LeakyRelu);
  export_onnx(params, tmp.str("m.onnx"), {1, 13});
  const onnx::ModelProto model = read_model(tmp.str("m.onnx"));

  std::map<std::string, const onnx::TensorProto*> initializers;
  for (const auto& t : model.graph().initializer()) initializers[t.name()] = &t;
  std::map<std::string, int> op_count;
  std::set<std::string> concat_inputs;
  for (const auto& node : model.graph().node()) {
    ++op_count[node.op_type()];
    if (node.op_type() == "Conv") {
      const onnx::TensorProto& w = *initializers.at(node.input(1));
      const int64_t k = w.dims(2);
      EXPECT_EQ(ints_attribute(node, "kernel_shape"), (std::vector<int64_t>{k, k}));
      EXPECT_EQ(ints_attribute(node, "strides"), (std::vector<int64_t>{1, 1}));
      const std::vector<int64_t> expected_pads = k == 3   ? std::vector<int64_t>{1, 1, 1, 1}
                                                 : k == 2 ? std::vector<int64_t>{0, 0, 1, 1}
                                                          : std::vector<int64_t>{0, 0, 0, 0};
      EXPECT_EQ(ints_attribute(node, "pads"), expected_pads) << node.name();
    } else if (node.op_type() == "Resize") {
      EXPECT_EQ(string_attribute(node, "mode"), "nearest");
      EXPECT_EQ(string_attribute(node, "coordinate_transformation_mode"), "asymmetric");
      EXPECT_EQ(string_attribute(node, "nearest_mode"), "floor");
      const onnx::TensorProto& scales = *initializers.at(node.input(2));
      std::vector<float> s(4);
      ASSERT_EQ(scales.raw_data().size(), sizeof(float) * 4);
      std::memcpy(s.data(), scales.raw_data().data(), sizeof(float) * 4);
      EXPECT_EQ(s, (std::vector<float>{1, 1, 2, 2}));
    } else if (node.op_type() == "Concat") {
      // The decoder side comes out of a Resize + 2x2 conv (or its activation), the skip out of a 3x3 one.
      EXPECT_NE(node.input(0).find("deconv2d"), std::string::npos) << node.input(0);
      EXPECT_EQ(node.input(1).find("deconv2d"), std::string::npos) << node.input(1);
    }
  }
  EXPECT_EQ(op_count["Conv"], 23);
  EXPECT_EQ(op_count["LeakyRelu"], 22);
  EXPECT_EQ(op_count["Relu"], 0);
  EXPECT_EQ(op_count["MaxPool"], 4);
  EXPECT_EQ(op_count["Resize"], 4);
  EXPECT_EQ(op_count["Concat"], 4);
  EXPECT_EQ(op_count["Sigmoid"], 1);

  // Every kernel: W[o][i][h][w] = K[h][w][i][o].
  for (size_t c = 0; c < params.tensors.size(); c += 2) {
    const Tensor& k = params.tensors[c].tensor;
    const std::string scope = params.tensors[c].name.substr(0, params.tensors[c].name.rfind('/'));
    const onnx::TensorProto& w = *initializers.at(scope + "/kernel_oihw");
    const int64_t kh = k.shape[0], kw = k.shape[1], ci = k.shape[2], co = k.shape[3];
    ASSERT_EQ(std::vector<int64_t>(w.dims().begin(), w.dims().end()), (std::vector<int64_t>{co, ci, kh, kw}));
    std::vector<float> wv(static_cast<size_t>(k.numel()));
    ASSERT_EQ(w.raw_data().size(), wv.size() * sizeof(float));
    std::memcpy(wv.data(), w.raw_data().data(), w.raw_data().size());
    for (int64_t o = 0; o < co; ++o)
      for (int64_t i = 0; i < ci; ++i)
        for (int64_t h = 0; h < kh; ++h)
          for (int64_t x = 0; x < kw; ++x)
            ASSERT_EQ(wv[static_cast<size_t>(((o * ci + i) * kh + h) * kw + x)],
                      k.data[static_cast<size_t>(((h * kw + x) * ci + i) * co + o)])
                << scope;
    const onnx::TensorProto& b = *initializers.at(params.tensors[c + 1].name);
    ASSERT_EQ(b.raw_data().size(), params.tensors[c + 1].tensor.data.size() * sizeof(float));
  }
}

#endif  // UNETIND_HAVE_ONNX

#ifdef UNETIND_HAVE_OPENCV_DNN

std::vector<std::string> fixture_images() {
  const std::string shared = test::shared_dir();
  if (shared.empty()) return {};
  const std::string dir = shared + "/fixtures/dagm2007/";
  std::vector<std::string> images = {dir + "Class1/Test/0002.PNG", dir + "Class4/Train/0602.PNG"};
  for (const std::string& p : images)
    if (!fs::exists(p)) return {};
  return images;
}

// `predict`'s probabilities for each image (DIR/<stem>_prob.npy).
std::vector<Tensor> predict_with_cli(const std::string& weights, const std::vector<std::string>& images,
                                     const TempDir& tmp) {
  std::string args = "predict --model " + weights + " --out " + tmp.str("predict");
  for (const std::string& p : images) args += " " + p;
  std::string out;
  EXPECT_EQ(test::run_cli(args, &out), 0) << out;
  std::vector<Tensor> probs;
  for (const std::string& p : images)
    probs.push_back(read_npy(tmp.str("predict/" + fs::path(p).stem().string() + "_prob.npy")));
  return probs;
}

// OpenCV's probabilities for the images in one NHWC batch.
std::vector<std::vector<float>> run_opencv(const std::string& onnx_path, const std::vector<std::string>& images) {
  cv::dnn::Net net = cv::dnn::readNetFromONNX(onnx_path);
  net.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
  net.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
  const int n = static_cast<int>(images.size()), s = kModelImageSize;
  const int shape[] = {n, s, s, 1};
  cv::Mat blob(4, shape, CV_32F);
  for (int b = 0; b < n; ++b) {
    const GrayImage img = read_png_gray(images[static_cast<size_t>(b)]);
    const std::vector<float> x = prepare_input(img.pixels, img.width, img.height, s);
    std::copy(x.begin(), x.end(), blob.ptr<float>() + static_cast<size_t>(b) * s * s);
  }
  net.setInput(blob, "images");
  const cv::Mat out = net.forward("probabilities");
  EXPECT_EQ(out.dims, 4);
  EXPECT_EQ(std::vector<int>(out.size.p, out.size.p + out.dims), (std::vector<int>{n, s, s, 1}));
  std::vector<std::vector<float>> probs;
  for (int b = 0; b < n; ++b) {
    const float* p = out.ptr<float>() + static_cast<size_t>(b) * s * s;
    probs.emplace_back(p, p + static_cast<size_t>(s) * s);
  }
  return probs;
}

void expect_matches_predict(const std::vector<std::vector<float>>& onnx, const std::vector<Tensor>& predicted,
                            const std::vector<std::string>& images) {
  ASSERT_EQ(onnx.size(), predicted.size());
  for (size_t i = 0; i < onnx.size(); ++i) {
    SCOPED_TRACE(images[i]);
    ASSERT_EQ(predicted[i].data.size(), onnx[i].size());
    // The comparison means something only if the map is not flat.
    const auto [lo, hi] = std::minmax_element(predicted[i].data.begin(), predicted[i].data.end());
    EXPECT_GT(*hi - *lo, 0.05f);
    EXPECT_LE(test::max_abs_diff(onnx[i], predicted[i].data), 1e-4);
  }
}

TEST(OnnxExportOpenCv, ProbabilitiesEqualPredictOnFixtureImages) {
  REQUIRE_ONNX();
  const std::vector<std::string> images = fixture_images();
  if (images.empty()) GTEST_SKIP() << "no ../shared/fixtures/dagm2007 images (a user's clone)";
  TempDir tmp;
  const Parameters params = test_parameters();
  save_parameters(tmp.str("w.safetensors"), params);
  const std::vector<Tensor> predicted = predict_with_cli(tmp.str("w.safetensors"), images, tmp);

  std::string out;
  ASSERT_EQ(test::run_cli("export --model " + tmp.str("w.safetensors") + " --format onnx --out " +
                              tmp.str("dynamic.onnx") + " --batch dynamic --opset 13",
                          &out),
            0)
      << out;
  expect_matches_predict(run_opencv(tmp.str("dynamic.onnx"), images), predicted, images);

  ASSERT_EQ(test::run_cli("export --model " + tmp.str("w.safetensors") + " --out " + tmp.str("one.onnx") +
                              " --batch 1 --opset 17",
                          &out),
            0)
      << out;
  expect_matches_predict(run_opencv(tmp.str("one.onnx"), {images[0]}), {predicted[0]}, {images[0]});
}

#endif  // UNETIND_HAVE_OPENCV_DNN

}  // namespace
}  // namespace unetind
