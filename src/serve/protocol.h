// The KServe v2 / Open Inference Protocol's inference messages over HTTP,
// with Triton's binary tensor extension (../shared/KSERVE.md): parsing a
// request body into tensors and encoding a response. Pure functions over
// bytes, so that the server, the tests and the fuzzer share them; nothing
// here knows the model.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "unetind/error.h"
#include "unetind/tensor.h"

namespace unetind::serve {

// A request the client got wrong: the HTTP status to answer (400 unless
// said) and a message naming what is wrong.
class RequestError : public Error {
 public:
  explicit RequestError(const std::string& what, int status = 400) : Error(what), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

// Bytes of one element of a protocol datatype ("FP32": 4, "BOOL": 1); 0 for
// BYTES and names that are not datatypes.
size_t datatype_size(std::string_view datatype);

struct InputTensor {
  std::string name;
  std::string datatype;
  Shape shape;
  bool binary = false;
  std::string_view bytes;  // binary: the raw little-endian elements (a view into the body)
  nlohmann::json data;     // JSON: the flattened "data" array

  int64_t numel() const { return shape_numel(shape); }
};

struct RequestedOutput {
  std::string name;
  std::optional<bool> binary;  // its own "binary_data" parameter, when given
};

struct InferRequest {
  std::string id;                        // echoed in the response; empty when not given
  nlohmann::json parameters;             // request-level parameters (an object)
  std::vector<InputTensor> inputs;
  std::vector<RequestedOutput> outputs;  // empty: every output
  bool binary_outputs = false;           // request-level "binary_data_output"
};

// The largest tensor a request may declare, in elements. Bodies are bounded
// by the server's size limit anyway; this keeps shape arithmetic exact.
constexpr int64_t kMaxRequestElements = int64_t{1} << 40;

// `body` is the whole HTTP body; `json_length` the value of the
// Inference-Header-Content-Length header when the request carries one (the
// JSON is then the body's first json_length bytes and binary tensors follow,
// in the order of the inputs that declare `binary_data_size`). Every input's
// element count is checked against its shape and datatype. Throws
// RequestError naming what is wrong. Binary tensors are views into `body`,
// which must outlive the request.
InferRequest parse_infer_request(std::string_view body, std::optional<size_t> json_length);

// Parses the value of an Inference-Header-Content-Length header.
size_t parse_header_length(const std::string& value);

// An input's elements as floats: FP32 as they are, integer types by value.
// Throws RequestError for other datatypes and for JSON elements that are not
// numbers of the datatype's range.
std::vector<float> input_values(const InputTensor& input);

struct OutputTensor {
  std::string name;
  std::string datatype;  // "FP32", "UINT8" or "BOOL"
  Shape shape;
  std::string bytes;     // raw little-endian elements, row-major
  bool binary = false;   // sent as binary data rather than JSON
};

struct EncodedResponse {
  std::string body;
  std::string content_type;
  std::optional<size_t> json_length;  // for the Inference-Header-Content-Length header
};

EncodedResponse encode_infer_response(const std::string& model_name, const std::string& model_version,
                                      const std::string& id, const std::vector<OutputTensor>& outputs);

// {"error": message}, the body of every non-200 answer.
std::string error_body(const std::string& message);

}  // namespace unetind::serve
