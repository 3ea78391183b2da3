#include "serve/protocol.h"

#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

namespace unetind::serve {

static_assert(std::endian::native == std::endian::little, "the binary tensor format is little-endian");

using nlohmann::json;

namespace {

const json& field(const json& object, const char* key, const std::string& where) {
  auto it = object.find(key);
  if (it == object.end()) throw RequestError(where + " has no \"" + key + "\"");
  return *it;
}

std::string string_field(const json& object, const char* key, const std::string& where) {
  const json& v = field(object, key, where);
  if (!v.is_string()) throw RequestError(where + ": \"" + key + "\" must be a string");
  return v.get<std::string>();
}

const json* parameters_of(const json& object, const std::string& where) {
  auto it = object.find("parameters");
  if (it == object.end()) return nullptr;
  if (!it->is_object()) throw RequestError(where + ": \"parameters\" must be an object");
  return &*it;
}

// A boolean parameter, when present.
std::optional<bool> bool_parameter(const json* params, const char* key, const std::string& where) {
  if (!params) return std::nullopt;
  auto it = params->find(key);
  if (it == params->end()) return std::nullopt;
  if (!it->is_boolean()) throw RequestError(where + ": parameter \"" + key + "\" must be true or false");
  return it->get<bool>();
}

Shape parse_shape(const json& v, const std::string& where) {
  if (!v.is_array()) throw RequestError(where + ": \"shape\" must be an array of sizes");
  Shape shape;
  int64_t numel = 1;
  for (const json& d : v) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0)
      throw RequestError(where + ": \"shape\" must hold sizes (whole numbers >= 0), not " + d.dump());
    const int64_t n = d.get<int64_t>();
    if (n > 0 && numel > kMaxRequestElements / n)
      throw RequestError(where + ": shape " + v.dump() + " is larger than any request can be");
    numel *= n;
    shape.push_back(n);
  }
  return shape;
}

// "data" as a flat array, nested as deep as a tensor's rank can be.
constexpr int kMaxDataNesting = 32;

void flatten(const json& v, json& out, const std::string& where, int depth = 0) {
  if (!v.is_array()) {
    out.push_back(v);
    return;
  }
  if (depth == kMaxDataNesting) throw RequestError(where + ": \"data\" is nested deeper than any tensor's rank");
  for (const json& e : v) flatten(e, out, where, depth + 1);
}

InputTensor parse_input(const json& in, size_t index, bool has_binary_section) {
  const std::string where = "input " + std::to_string(index);
  if (!in.is_object()) throw RequestError(where + " must be an object");
  InputTensor t;
  t.name = string_field(in, "name", where);
  const std::string named = "input '" + t.name + "'";
  t.datatype = string_field(in, "datatype", named);
  if (datatype_size(t.datatype) == 0 && t.datatype != "BYTES")
    throw RequestError(named + ": unknown datatype \"" + t.datatype + "\"");
  t.shape = parse_shape(field(in, "shape", named), named);

  const json* params = parameters_of(in, named);
  const auto size_it = params ? params->find("binary_data_size") : json::const_iterator{};
  const bool binary = params && size_it != params->end();
  const bool has_data = in.contains("data");
  if (binary) {
    if (!has_binary_section)
      throw RequestError(named + " declares binary_data_size but the request has no Inference-Header-Content-Length");
    if (has_data) throw RequestError(named + " has both \"data\" and binary_data_size");
    if (!size_it->is_number_unsigned()) throw RequestError(named + ": binary_data_size must be a byte count");
    t.binary = true;
  } else if (!has_data) {
    throw RequestError(named + " has neither \"data\" nor binary_data_size");
  } else {
    t.data = json::array();
    flatten(in["data"], t.data, named);
  }
  return t;
}

void check_element_count(const InputTensor& t, uint64_t binary_bytes) {
  const std::string named = "input '" + t.name + "'";
  const int64_t numel = t.numel();
  if (t.binary) {
    const size_t elem = datatype_size(t.datatype);
    if (elem == 0) throw RequestError(named + ": binary BYTES tensors are not supported by this server");
    if (binary_bytes != static_cast<uint64_t>(numel) * elem)
      throw RequestError(named + ": shape " + shape_to_string(t.shape) + " of " + t.datatype + " needs " +
                         std::to_string(numel * elem) + " bytes, binary_data_size says " +
                         std::to_string(binary_bytes));
  } else if (static_cast<int64_t>(t.data.size()) != numel) {
    throw RequestError(named + ": shape " + shape_to_string(t.shape) + " needs " + std::to_string(numel) +
                       " values, \"data\" holds " + std::to_string(t.data.size()));
  }
}

json json_elements(const OutputTensor& t) {
  json data = json::array();
  const size_t elem = datatype_size(t.datatype);
  const size_t n = elem ? t.bytes.size() / elem : 0;
  for (size_t i = 0; i < n; ++i) {
    const char* p = t.bytes.data() + i * elem;
    if (t.datatype == "FP32") {
      float v;
      std::memcpy(&v, p, sizeof v);
      data.push_back(v);
    } else if (t.datatype == "UINT8") {
      data.push_back(static_cast<uint8_t>(*p));
    } else if (t.datatype == "BOOL") {
      data.push_back(*p != 0);
    } else {
      throw Error("encode_infer_response: output datatype " + t.datatype + " is not implemented");
    }
  }
  return data;
}

}  // namespace

size_t datatype_size(std::string_view d) {
  if (d == "BOOL" || d == "UINT8" || d == "INT8") return 1;
  if (d == "UINT16" || d == "INT16" || d == "FP16" || d == "BF16") return 2;
  if (d == "UINT32" || d == "INT32" || d == "FP32") return 4;
  if (d == "UINT64" || d == "INT64" || d == "FP64") return 8;
  return 0;
}

size_t parse_header_length(const std::string& value) {
  size_t n = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
  if (ec != std::errc() || end != value.data() + value.size() || value.empty())
    throw RequestError("Inference-Header-Content-Length must be a byte count, not \"" + value + "\"");
  return n;
}

InferRequest parse_infer_request(std::string_view body, std::optional<size_t> json_length) {
  if (json_length && *json_length > body.size())
    throw RequestError("Inference-Header-Content-Length is " + std::to_string(*json_length) +
                       " but the body holds only " + std::to_string(body.size()) + " bytes");
  const std::string_view header = json_length ? body.substr(0, *json_length) : body;
  json doc = json::parse(header.begin(), header.end(), nullptr, false);
  if (doc.is_discarded()) throw RequestError("the request body is not valid JSON");
  if (!doc.is_object()) throw RequestError("the request must be a JSON object");

  InferRequest r;
  if (auto it = doc.find("id"); it != doc.end()) {
    if (!it->is_string()) throw RequestError("\"id\" must be a string");
    r.id = it->get<std::string>();
  }
  const json* params = parameters_of(doc, "the request");
  r.parameters = params ? *params : json::object();
  r.binary_outputs = bool_parameter(params, "binary_data_output", "the request").value_or(false);

  const json& inputs = field(doc, "inputs", "the request");
  if (!inputs.is_array() || inputs.empty()) throw RequestError("\"inputs\" must be a non-empty array");
  for (size_t i = 0; i < inputs.size(); ++i) r.inputs.push_back(parse_input(inputs[i], i, json_length.has_value()));

  // Binary tensors follow the JSON in input order, each exactly its size.
  size_t offset = header.size();
  for (size_t i = 0; i < r.inputs.size(); ++i) {
    InputTensor& t = r.inputs[i];
    uint64_t bytes = 0;
    if (t.binary) bytes = inputs[i]["parameters"]["binary_data_size"].get<uint64_t>();
    check_element_count(t, bytes);
    if (!t.binary) continue;
    if (bytes > body.size() - offset)
      throw RequestError("input '" + t.name + "': binary_data_size is " + std::to_string(bytes) + " but only " +
                         std::to_string(body.size() - offset) + " bytes of binary data remain (truncated body?)");
    t.bytes = body.substr(offset, bytes);
    offset += bytes;
  }
  if (offset != body.size())
    throw RequestError("the body holds " + std::to_string(body.size() - offset) +
                       " bytes after the last binary tensor that no input declares");

  if (auto it = doc.find("outputs"); it != doc.end()) {
    if (!it->is_array()) throw RequestError("\"outputs\" must be an array");
    for (size_t i = 0; i < it->size(); ++i) {
      const json& o = (*it)[i];
      const std::string where = "output " + std::to_string(i);
      if (!o.is_object()) throw RequestError(where + " must be an object");
      RequestedOutput out;
      out.name = string_field(o, "name", where);
      out.binary = bool_parameter(parameters_of(o, where), "binary_data", "output '" + out.name + "'");
      r.outputs.push_back(out);
    }
  }
  return r;
}

std::vector<float> input_values(const InputTensor& t) {
  const std::string named = "input '" + t.name + "'";
  const bool fp32 = t.datatype == "FP32", u8 = t.datatype == "UINT8";
  if (!fp32 && !u8) throw RequestError(named + ": datatype " + t.datatype + " is not accepted (FP32 or UINT8)");
  std::vector<float> out(static_cast<size_t>(t.numel()));
  if (t.binary) {
    if (fp32) {
      std::memcpy(out.data(), t.bytes.data(), out.size() * sizeof(float));
    } else {
      for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint8_t>(t.bytes[i]);
    }
    return out;
  }
  for (size_t i = 0; i < out.size(); ++i) {
    const json& v = t.data[i];
    if (u8) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 255)
        throw RequestError(named + ": UINT8 element " + std::to_string(i) + " is " + v.dump() +
                           ", not a whole number from 0 to 255");
      out[i] = static_cast<float>(v.get<int64_t>());
    } else {
      if (!v.is_number()) throw RequestError(named + ": FP32 element " + std::to_string(i) + " is " + v.dump());
      out[i] = v.get<float>();
    }
  }
  return out;
}

EncodedResponse encode_infer_response(const std::string& model_name, const std::string& model_version,
                                      const std::string& id, const std::vector<OutputTensor>& outputs) {
  json doc = {{"model_name", model_name}, {"model_version", model_version}};
  if (!id.empty()) doc["id"] = id;
  doc["outputs"] = json::array();
  size_t binary_bytes = 0;
  for (const OutputTensor& t : outputs) {
    json o = {{"name", t.name}, {"datatype", t.datatype}, {"shape", t.shape}};
    if (t.binary) {
      o["parameters"] = {{"binary_data_size", t.bytes.size()}};
      binary_bytes += t.bytes.size();
    } else {
      o["data"] = json_elements(t);
    }
    doc["outputs"].push_back(std::move(o));
  }
  EncodedResponse r;
  r.body = doc.dump();
  if (binary_bytes == 0) {
    r.content_type = "application/json";
    return r;
  }
  // The binary tensors follow the JSON, in output order.
  r.json_length = r.body.size();
  r.body.reserve(r.body.size() + binary_bytes);
  for (const OutputTensor& t : outputs)
    if (t.binary) r.body += t.bytes;
  r.content_type = "application/octet-stream";
  return r;
}

std::string error_body(const std::string& message) { return json{{"error", message}}.dump(); }

}  // namespace unetind::serve
