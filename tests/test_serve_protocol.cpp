// The KServe v2 request parser and response encoder (src/serve/protocol.*)
// and the model's tensors (src/serve/model_io.*), without a server.
#include <gtest/gtest.h>

#include <cstring>

#include "serve/model_io.h"
#include "serve/protocol.h"
#include "unetind/model.h"

namespace unetind::serve {
namespace {

using nlohmann::json;

std::string binary_body(const json& header, const std::string& tensor, size_t* json_length) {
  const std::string h = header.dump();
  *json_length = h.size();
  return h + tensor;
}

// The message of the RequestError that `f` throws, and its status.
template <typename F>
std::pair<int, std::string> request_error(F f) {
  try {
    f();
  } catch (const RequestError& e) {
    return {e.status(), e.what()};
  }
  ADD_FAILURE() << "no RequestError";
  return {0, ""};
}

TEST(ServeProtocol, ParsesJsonTensorsNestedOrFlat) {
  for (const char* data : {"[1, 2, 3, 4, 5, 6]", "[[[1], [2], [3]], [[4], [5], [6]]]"}) {
    const std::string body = std::string(R"({"id": "r1", "inputs": [{"name": "images", "datatype": "UINT8",
        "shape": [1, 2, 3, 1], "data": )") + data + "}]}";
    const InferRequest r = parse_infer_request(body, std::nullopt);
    EXPECT_EQ(r.id, "r1");
    ASSERT_EQ(r.inputs.size(), 1u);
    EXPECT_EQ(r.inputs[0].shape, (Shape{1, 2, 3, 1}));
    EXPECT_EQ(input_values(r.inputs[0]), (std::vector<float>{1, 2, 3, 4, 5, 6}));
    EXPECT_TRUE(r.outputs.empty());
  }
}

TEST(ServeProtocol, ParsesBinaryTensorsAfterTheJsonHeader) {
  const std::vector<float> values = {0.5f, -1.0f, 0.25f, 1.0f};
  std::string tensor(reinterpret_cast<const char*>(values.data()), values.size() * 4);
  json header = {{"inputs", {{{"name", "images"}, {"datatype", "FP32"}, {"shape", {1, 2, 2, 1}},
                              {"parameters", {{"binary_data_size", tensor.size()}}}}}},
                 {"outputs", {{{"name", "mask"}, {"parameters", {{"binary_data", false}}}}, {{"name", "defect_score"}}}},
                 {"parameters", {{"binary_data_output", true}}}};
  size_t n = 0;
  const std::string body = binary_body(header, tensor, &n);
  const InferRequest r = parse_infer_request(body, n);
  EXPECT_TRUE(r.inputs[0].binary);
  EXPECT_EQ(input_values(r.inputs[0]), values);
  EXPECT_TRUE(r.binary_outputs);
  ASSERT_EQ(r.outputs.size(), 2u);
  EXPECT_EQ(r.outputs[0].binary, std::optional<bool>(false));
  EXPECT_FALSE(r.outputs[1].binary.has_value());
}

TEST(ServeProtocol, NamesWhatIsWrong) {
  struct Case {
    std::string body;
    std::optional<size_t> json_length;
    std::string message_part;
  };
  const std::string ok_input = R"({"name": "images", "datatype": "UINT8", "shape": [1, 1, 2, 1], "data": [1, 2]})";
  const std::vector<Case> cases = {
      {"{bad", std::nullopt, "not valid JSON"},
      {"[]", std::nullopt, "must be a JSON object"},
      {"{}", std::nullopt, "no \"inputs\""},
      {R"({"inputs": []})", std::nullopt, "non-empty array"},
      {R"({"inputs": [{"datatype": "UINT8", "shape": [1], "data": [1]}]})", std::nullopt, "no \"name\""},
      {R"({"inputs": [{"name": "images", "datatype": "FLOAT", "shape": [1], "data": [1]}]})", std::nullopt,
       "unknown datatype \"FLOAT\""},
      {R"({"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, -2], "data": [1]}]})", std::nullopt,
       "\"shape\" must hold sizes"},
      {R"({"inputs": [{"name": "images", "datatype": "UINT8", "shape": [2, 2], "data": [1, 2, 3]}]})", std::nullopt,
       "needs 4 values, \"data\" holds 3"},
      {R"({"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1]}]})", std::nullopt,
       "neither \"data\" nor binary_data_size"},
      {R"({"inputs": [{"name": "images", "datatype": "UINT8", "shape": [4],
           "parameters": {"binary_data_size": 4}}]})",
       std::nullopt, "no Inference-Header-Content-Length"},
      {R"({"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 4194304, 4194304, 4194304]}]})",
       std::nullopt, "larger than any request can be"},
      {"{\"inputs\": [" + ok_input + "], \"outputs\": [{\"name\": 3}]}", std::nullopt, "\"name\" must be a string"},
      {std::string(R"({"inputs": )") + std::string(40, '[') + std::string(40, ']') + "}", std::nullopt,
       "input 0 must be an object"},
      {R"({"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1], "data": )" + std::string(40, '[') + "1" +
           std::string(40, ']') + "}]}",
       std::nullopt, "nested deeper"},
      {"{}", 100, "Inference-Header-Content-Length is 100"},
  };
  for (const Case& c : cases) {
    const auto [status, message] = request_error([&] { parse_infer_request(c.body, c.json_length); });
    EXPECT_EQ(status, 400) << c.body;
    EXPECT_NE(message.find(c.message_part), std::string::npos) << "body " << c.body << "\nmessage: " << message;
  }
}

TEST(ServeProtocol, BinarySizesMustMatchTheBody) {
  json header = {{"inputs", {{{"name", "images"}, {"datatype", "UINT8"}, {"shape", {1, 2, 2, 1}},
                              {"parameters", {{"binary_data_size", 4}}}}}}};
  size_t n = 0;
  // Truncated: the tensor is shorter than binary_data_size.
  std::string body = binary_body(header, "ab", &n);
  EXPECT_NE(request_error([&] { parse_infer_request(body, n); }).second.find("only 2 bytes of binary data remain"),
            std::string::npos);
  // Extra bytes nobody declares.
  body = binary_body(header, "abcdef", &n);
  EXPECT_NE(request_error([&] { parse_infer_request(body, n); }).second.find("2 bytes after the last"),
            std::string::npos);
  // binary_data_size that does not fit the shape.
  header["inputs"][0]["parameters"]["binary_data_size"] = 5;
  body = binary_body(header, "abcde", &n);
  EXPECT_NE(request_error([&] { parse_infer_request(body, n); }).second.find("needs 4 bytes"), std::string::npos);
  EXPECT_THROW(parse_header_length("12x"), RequestError);
  EXPECT_EQ(parse_header_length("12"), 12u);
}

TEST(ServeProtocol, Uint8ElementsMustBeBytes) {
  const InferRequest r = parse_infer_request(
      R"({"inputs": [{"name": "images", "datatype": "UINT8", "shape": [2], "data": [1, 256]}]})", std::nullopt);
  EXPECT_NE(request_error([&] { input_values(r.inputs[0]); }).second.find("element 1 is 256"), std::string::npos);
}

TEST(ServeProtocol, EncodesJsonAndBinaryOutputs) {
  OutputTensor probs{"probabilities", "FP32", {2}, std::string(8, '\0'), true};
  const float v[2] = {0.25f, 0.75f};
  std::memcpy(probs.bytes.data(), v, 8);
  OutputTensor flag{"is_defective", "BOOL", {2}, std::string("\x01\x00", 2), false};
  const EncodedResponse r = encode_infer_response("m", "1", "req-7", {probs, flag});
  ASSERT_TRUE(r.json_length.has_value());
  EXPECT_EQ(r.content_type, "application/octet-stream");
  const json header = json::parse(r.body.substr(0, *r.json_length));
  EXPECT_EQ(header["id"], "req-7");
  EXPECT_EQ(header["outputs"][0]["parameters"]["binary_data_size"], 8);
  EXPECT_EQ(header["outputs"][1]["data"], json::parse("[true, false]"));
  EXPECT_EQ(r.body.substr(*r.json_length), probs.bytes);

  const EncodedResponse j = encode_infer_response("m", "1", "", {flag});
  EXPECT_FALSE(j.json_length.has_value());
  EXPECT_FALSE(json::parse(j.body).contains("id"));
}

TEST(ServeModelIo, PreparesImagesLikePredict) {
  // A 3x2 UINT8 image padded to 16x16: the same as prepare_input.
  const std::vector<float> pixels = {0, 50, 100, 150, 200, 255};
  json data = json::array();
  for (float p : pixels) data.push_back(static_cast<int>(p));
  const InferRequest r = parse_infer_request(
      json{{"inputs", {{{"name", "images"}, {"datatype", "UINT8"}, {"shape", {1, 2, 3, 1}}, {"data", data}}}}}.dump(),
      std::nullopt);
  const ImageBatch b = images_from_request(r, 16, 8);
  EXPECT_EQ(b.count, 1);
  EXPECT_EQ(b.widths[0], 3);
  EXPECT_EQ(b.heights[0], 2);
  EXPECT_EQ(b.inputs, prepare_input(pixels, 3, 2, 16));
}

TEST(ServeModelIo, RefusesWhatTheModelCannotTake) {
  auto body = [](const std::string& name, const std::string& type, const std::string& shape, const std::string& data) {
    return R"({"inputs": [{"name": ")" + name + R"(", "datatype": ")" + type + R"(", "shape": )" + shape +
           R"(, "data": )" + data + "}]}";
  };
  struct Case {
    std::string body, message_part;
  };
  const std::vector<Case> cases = {
      {body("pixels", "UINT8", "[1, 1, 1, 1]", "[1]"), "takes one input, 'images'; the request has 'pixels'"},
      {body("images", "INT32", "[1, 1, 1, 1]", "[1]"), "FP32 (scaled to [-1, 1]) or UINT8"},
      {body("images", "UINT8", "[1, 1, 1, 3]", "[1, 2, 3]"), "must be [N, H, W, 1]"},
      {body("images", "UINT8", "[1, 2, 2]", "[1, 2, 3, 4]"), "must be [N, H, W, 1]"},
      {body("images", "UINT8", "[0, 1, 1, 1]", "[]"), "must be [N, H, W, 1]"},
      {body("images", "UINT8", "[9, 1, 1, 1]", "[1, 1, 1, 1, 1, 1, 1, 1, 1]"), "more than the model's max batch size 8"},
  };
  for (const Case& c : cases) {
    const InferRequest r = parse_infer_request(c.body, std::nullopt);
    const auto [status, message] = request_error([&] { images_from_request(r, 16, 8); });
    EXPECT_EQ(status, 400);
    EXPECT_NE(message.find(c.message_part), std::string::npos) << message;
  }
}

TEST(ServeModelIo, RefusesNonFiniteFp32Pixels) {
  const float nan = std::nanf("");
  std::string tensor(reinterpret_cast<const char*>(&nan), 4);
  const std::string header = json{{"inputs", {{{"name", "images"}, {"datatype", "FP32"}, {"shape", {1, 1, 1, 1}},
                                               {"parameters", {{"binary_data_size", 4}}}}}}}
                                 .dump();
  const std::string body = header + tensor;  // the request's binary tensor is a view into it
  const InferRequest r = parse_infer_request(body, header.size());
  EXPECT_NE(request_error([&] { images_from_request(r, 16, 8); }).second.find("not finite"), std::string::npos);
}

TEST(ServeModelIo, OutputsAreTheRequestedOnesWithTheirShapes) {
  const InferRequest r = parse_infer_request(
      R"({"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 16, 16, 1], "data": [)" +
          [] {
            std::string s;
            for (int i = 0; i < 256; ++i) {
              if (i) s += ',';
              s += std::to_string(i);
            }
            return s;
          }() +
          R"(]}], "outputs": [{"name": "is_defective"}, {"name": "mask", "parameters": {"binary_data": true}}]})",
      std::nullopt);
  const ImageBatch b = images_from_request(r, 16, 8);
  std::vector<float> probs(256, 0.2f);
  probs[17] = 0.9f;
  const std::vector<OutputTensor> out = outputs_for(r, b, probs, 16, 0.5f);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].name, "is_defective");
  EXPECT_EQ(out[0].bytes, std::string("\x01", 1));
  EXPECT_FALSE(out[0].binary);
  EXPECT_EQ(out[1].shape, (Shape{1, 16, 16, 1}));
  EXPECT_TRUE(out[1].binary);
  EXPECT_EQ(static_cast<uint8_t>(out[1].bytes[17]), 255);
  EXPECT_EQ(static_cast<uint8_t>(out[1].bytes[16]), 0);

  InferRequest unknown = r;
  unknown.outputs = {{"logits", std::nullopt}};
  EXPECT_NE(request_error([&] { outputs_for(unknown, b, probs, 16, 0.5f); }).second.find("unknown output 'logits'"),
            std::string::npos);
}

TEST(ServeModelIo, ThresholdParameter) {
  const InferRequest r = parse_infer_request(
      R"({"parameters": {"threshold": 0.25}, "inputs": [{"name": "images", "datatype": "UINT8", "shape": [1], "data": [1]}]})",
      std::nullopt);
  EXPECT_FLOAT_EQ(request_threshold(r, 0.5f), 0.25f);
  const InferRequest bad = parse_infer_request(
      R"({"parameters": {"threshold": "high"}, "inputs": [{"name": "images", "datatype": "UINT8", "shape": [1], "data": [1]}]})",
      std::nullopt);
  EXPECT_THROW(request_threshold(bad, 0.5f), RequestError);
}

}  // namespace
}  // namespace unetind::serve
