// The inference server's request parser (src/serve/protocol.cpp) and what
// the server does next with a parsed request (src/serve/model_io.cpp):
// the KServe v2 JSON, Triton's binary tensors, the input's images, the
// threshold and the outputs asked for.
//
// Input: one byte of choices (bit 0: the request carries an
// Inference-Header-Content-Length, given by the next two bytes, little-
// endian), then the body.
#include <optional>

#include "fuzz_support.h"
#include "serve/model_io.h"
#include "serve/protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace unetind;
  using namespace unetind::serve;
  if (size < 1) return 0;
  std::optional<size_t> json_length;
  size_t skip = 1;
  if (data[0] & 1) {
    if (size < 3) return 0;
    json_length = data[1] | size_t{data[2]} << 8;
    skip = 3;
  }
  const std::string_view body = fuzz::as_text(data + skip, size - skip);
  constexpr int kSize = 32, kMaxBatch = 4;
  try {
    const InferRequest request = parse_infer_request(body, json_length);
    const ImageBatch images = images_from_request(request, kSize, kMaxBatch);
    if (images.count < 1 || images.count > kMaxBatch ||
        images.inputs.size() != static_cast<size_t>(images.count) * kSize * kSize)
      fuzz::finding("a batch of " + std::to_string(images.count) + " with " + std::to_string(images.inputs.size()) +
                    " inputs");
    const float threshold = request_threshold(request, 0.5f);
    const std::vector<float> probs(images.inputs.size(), 0.75f);
    encode_infer_response("m", "1", request.id, outputs_for(request, images, probs, kSize, threshold));
  } catch (const RequestError&) {
  }
  return 0;
}
