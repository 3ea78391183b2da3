// ONNX export of a model, written with Debian's libonnx-dev (its protobuf
// classes) and validated by ONNX's checker and strict shape inference. The
// graph takes `images`, N x 512 x 512 x 1 float32 already scaled to [-1, 1]
// (what the TF-Hub module takes), and gives `probabilities`, N x 512 x 512 x
// 1. Inside it is NCHW with OIHW kernels; Transposes sit at both edges.
// Every op is spelt so that any conforming runtime computes our function:
// the 2x2 convolutions pad [0, 0, 1, 1] explicitly (TF's SAME), and the x2
// upsampling is a nearest Resize with asymmetric coordinates and floor
// rounding, i.e. out[i][j] = in[i/2][j/2].
#pragma once
#include <string>

#include "unetind/model.h"

namespace unetind {

constexpr int kOnnxMinOpset = 13;
constexpr int kOnnxMaxOpset = 17;

struct OnnxExportOptions {
  int batch = 1;  // images per run; 0 makes the batch dimension dynamic ("N")
  int opset = kOnnxMinOpset;
};

// False when the library was built without libonnx-dev; export_onnx then throws.
bool onnx_export_available();

// Builds, checks and writes (atomically) the ONNX model. Errors name `path`.
void export_onnx(const Parameters& params, const std::string& path, const OnnxExportOptions& options = {});

}  // namespace unetind
