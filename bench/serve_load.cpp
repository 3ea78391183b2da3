// serve_load: a bounded load client for `unet-industrial serve` (loopback or
// any host; a fixed number of requests, or until the server stops). Each
// request is one image of a set, sent as KServe v2 binary or JSON tensors,
// or a malformed request of a known kind. Every answer is checked: valid
// requests must return the probabilities `predict` wrote for that image
// (<stem>_prob.npy in --expected), malformed ones their 4xx. It prints and
// writes (--report) the counts, throughput and latency percentiles, and
// exits 1 when any answer was wrong or any accepted request went unanswered.
// The server tests run it; docs/serving.md's figures come from it.
#include <httplib.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "unetind/atomic_file.h"
#include "unetind/npy.h"
#include "unetind/image_io.h"

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

enum class Kind { ValidBinary, ValidJson, BadJson, WrongShape, WrongDatatype, TruncatedBinary, Oversized, UnknownModel };
constexpr int kKinds = 8;
const char* kKindNames[kKinds] = {"valid_binary", "valid_json",       "malformed_json", "wrong_shape",
                                  "wrong_datatype", "truncated_binary", "oversized_body", "unknown_model"};
int expected_status(Kind k) {
  switch (k) {
    case Kind::ValidBinary:
    case Kind::ValidJson: return 200;
    case Kind::Oversized: return 413;
    case Kind::UnknownModel: return 404;
    default: return 400;
  }
}

struct Image {
  std::string stem;
  int width = 0, height = 0;
  std::string pixels;           // UINT8, row-major
  std::vector<float> expected;  // size x size probabilities, when given
};

struct Options {
  std::string host = "127.0.0.1";
  int port = 8000;
  std::string model;
  std::vector<std::string> images;
  std::string expected_dir;
  int clients = 8;
  int requests = 1000;
  double bad_fraction = 0;
  double json_fraction = 0;
  bool until_refused = false;
  int max_body_mb = 64;
  double tolerance = 1e-5;
  std::string report;
};

struct Request {
  std::string path, body, content_type;
  httplib::Headers headers;
};

std::string binary_header(const Image& img, const char* datatype, size_t bytes, int channels = 1) {
  json j = {{"inputs",
             {{{"name", "images"},
               {"datatype", datatype},
               {"shape", {1, img.height, img.width, channels}},
               {"parameters", {{"binary_data_size", bytes}}}}}},
            {"outputs", {{{"name", "probabilities"}, {"parameters", {{"binary_data", true}}}}}}};
  return j.dump();
}

Request binary_request(const std::string& model, const std::string& header, const std::string& tensor) {
  Request r;
  r.path = "/v2/models/" + model + "/infer";
  r.body = header + tensor;
  r.content_type = "application/octet-stream";
  r.headers.emplace("Inference-Header-Content-Length", std::to_string(header.size()));
  return r;
}

Request make_request(Kind kind, const Image& img, const Options& opt) {
  switch (kind) {
    case Kind::ValidBinary:
      return binary_request(opt.model, binary_header(img, "UINT8", img.pixels.size()), img.pixels);
    case Kind::ValidJson: {
      std::vector<int> data(img.pixels.begin(), img.pixels.end());
      for (int& v : data) v = static_cast<uint8_t>(v);
      json j = {{"inputs", {{{"name", "images"}, {"datatype", "UINT8"}, {"shape", {1, img.height, img.width, 1}},
                             {"data", data}}}},
                {"outputs", {{{"name", "probabilities"}}}}};
      return {"/v2/models/" + opt.model + "/infer", j.dump(), "application/json", {}};
    }
    case Kind::BadJson:
      return {"/v2/models/" + opt.model + "/infer", R"({"inputs": [{"name": "images", "shape": [1, 2)",
              "application/json", {}};
    case Kind::WrongShape: {
      // Three channels: the element count matches the shape, the shape is wrong.
      std::string rgb;
      for (char c : img.pixels) rgb.append(3, c);
      return binary_request(opt.model, binary_header(img, "UINT8", rgb.size(), 3), rgb);
    }
    case Kind::WrongDatatype: {
      std::string wide(img.pixels.size() * 8, '\0');
      return binary_request(opt.model, binary_header(img, "INT64", wide.size()), wide);
    }
    case Kind::TruncatedBinary:
      return binary_request(opt.model, binary_header(img, "UINT8", img.pixels.size()),
                            img.pixels.substr(0, img.pixels.size() / 2));
    case Kind::Oversized: {
      std::string big((static_cast<size_t>(opt.max_body_mb) << 20) + 1024, 'x');
      return binary_request(opt.model, binary_header(img, "UINT8", big.size()), big);
    }
    case Kind::UnknownModel:
      return binary_request("no-such-model", binary_header(img, "UINT8", img.pixels.size()), img.pixels);
  }
  return {};
}

// The probabilities in an answer, binary or JSON.
std::vector<float> probabilities_of(const httplib::Result& res) {
  std::vector<float> probs;
  const std::string& body = res->body;
  if (res->has_header("Inference-Header-Content-Length")) {
    const size_t n = std::stoul(res->get_header_value("Inference-Header-Content-Length"));
    const json j = json::parse(body.substr(0, n));
    const size_t bytes = j["outputs"][0]["parameters"]["binary_data_size"].get<size_t>();
    probs.resize(bytes / sizeof(float));
    std::memcpy(probs.data(), body.data() + n, probs.size() * sizeof(float));
  } else {
    const json j = json::parse(body);
    for (const json& v : j["outputs"][0]["data"]) probs.push_back(v.get<float>());
  }
  return probs;
}

struct Tally {
  std::mutex mutex;
  long sent[kKinds] = {}, right[kKinds] = {};
  long refused = 0, unanswered = 0, queue_full = 0;
  std::vector<std::string> wrong;  // first few, for the report
  std::vector<double> latencies_ms;
  long images_ok = 0;

  void add_wrong(const std::string& what) {
    if (wrong.size() < 20) wrong.push_back(what);
  }
  long wrong_count() const {
    long n = 0;
    for (int k = 0; k < kKinds; ++k) n += sent[k] - right[k];
    return n;
  }
};

Kind kind_of(long i, const Options& opt) {
  // A fixed, well-mixed sequence of kinds (a multiplicative hash of i).
  const double u = static_cast<double>((static_cast<uint64_t>(i) * 2654435761u) % 100000) / 100000.0;
  if (u < opt.bad_fraction) return static_cast<Kind>(2 + static_cast<int>(u / opt.bad_fraction * (kKinds - 2)));
  const double v = static_cast<double>((static_cast<uint64_t>(i) * 40503u) % 1000) / 1000.0;
  return v < opt.json_fraction ? Kind::ValidJson : Kind::ValidBinary;
}

void client_loop(const Options& opt, const std::vector<Image>& images, std::atomic<long>& next, Tally& tally) {
  httplib::Client cli(opt.host, opt.port);
  cli.set_read_timeout(60, 0);
  cli.set_write_timeout(60, 0);
  cli.set_keep_alive(true);
  cli.set_tcp_nodelay(true);  // as curl and tritonclient do
  for (;;) {
    const long i = next++;
    if (!opt.until_refused && i >= opt.requests) return;
    const Kind kind = opt.until_refused ? Kind::ValidBinary : kind_of(i, opt);
    const Image& img = images[i % images.size()];
    const Request req = make_request(kind, img, opt);
    const Clock::time_point start = Clock::now();
    httplib::Result res = cli.Post(req.path.c_str(), req.headers, req.body, req.content_type.c_str());
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    std::lock_guard<std::mutex> lock(tally.mutex);
    if (!res) {
      // Connect failed (or the request could not be written): the server did
      // not take it. Written but unanswered: lost.
      const bool not_taken = res.error() == httplib::Error::Connection || res.error() == httplib::Error::Write;
      if (not_taken && opt.until_refused) {
        ++tally.refused;
        return;
      }
      ++tally.unanswered;
      tally.add_wrong(std::string(kKindNames[static_cast<int>(kind)]) + ": no answer (" + httplib::to_string(res.error()) + ")");
      continue;
    }
    ++tally.sent[static_cast<int>(kind)];
    if (res->status == 503) {
      ++tally.queue_full;
      --tally.sent[static_cast<int>(kind)];
      continue;
    }
    bool ok = res->status == expected_status(kind);
    std::string why = "status " + std::to_string(res->status);
    if (ok && res->status == 200 && !img.expected.empty()) {
      const std::vector<float> probs = probabilities_of(res);
      double diff = probs.size() == img.expected.size() ? 0 : INFINITY;
      for (size_t k = 0; k < probs.size() && std::isfinite(diff); ++k)
        diff = std::max(diff, static_cast<double>(std::fabs(probs[k] - img.expected[k])));
      ok = diff <= opt.tolerance;
      why = "probabilities differ from predict's by " + std::to_string(diff);
    }
    if (ok && res->status != 200) {
      // Every error answer is {"error": "..."} naming what is wrong.
      const json j = json::parse(res->body, nullptr, false);
      ok = j.is_object() && j.contains("error") && j["error"].is_string() && !j["error"].get<std::string>().empty();
      why = "error body " + res->body.substr(0, 200);
    }
    if (ok) {
      ++tally.right[static_cast<int>(kind)];
      if (res->status == 200) {
        tally.latencies_ms.push_back(ms);
        ++tally.images_ok;
      }
    } else {
      tally.add_wrong(std::string(kKindNames[static_cast<int>(kind)]) + " " + img.stem + ": " + why);
    }
  }
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * v.size()))];
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  CLI::App app{"serve_load: a bounded, checked load for unet-industrial serve"};
  app.add_option("--host", opt.host)->capture_default_str();
  app.add_option("--port", opt.port)->required();
  app.add_option("--model", opt.model, "Model name")->required();
  app.add_option("--images", opt.images, "Images to send (PNG, JPEG, TIFF, BMP, PGM)")->required();
  app.add_option("--expected", opt.expected_dir, "predict's output directory (<stem>_prob.npy) to check against");
  app.add_option("--clients", opt.clients, "Concurrent clients")->capture_default_str();
  app.add_option("--requests", opt.requests, "Requests in all")->capture_default_str();
  app.add_option("--bad", opt.bad_fraction, "Fraction of malformed requests (of 6 kinds)")->capture_default_str();
  app.add_option("--json", opt.json_fraction, "Fraction of valid requests sent as JSON tensors")
      ->capture_default_str();
  app.add_flag("--until-refused", opt.until_refused,
               "Send valid requests until the server refuses connections (for a shutdown under load)");
  app.add_option("--max-body-mb", opt.max_body_mb, "The server's --max-body-mb (oversized bodies exceed it)")
      ->capture_default_str();
  app.add_option("--tolerance", opt.tolerance, "Largest difference from predict's probabilities")
      ->capture_default_str();
  app.add_option("--report", opt.report, "Write the results as JSON");
  CLI11_PARSE(app, argc, argv);

  std::vector<Image> images;
  try {
    for (const std::string& path : opt.images) {
      const unetind::GrayImage g = unetind::read_image_gray(path);
      Image img;
      img.stem = std::filesystem::path(path).stem().string();
      img.width = g.width;
      img.height = g.height;
      for (float p : g.pixels) img.pixels.push_back(static_cast<char>(static_cast<uint8_t>(std::lround(p))));
      if (!opt.expected_dir.empty())
        img.expected = unetind::read_npy(opt.expected_dir + "/" + img.stem + "_prob.npy").data;
      images.push_back(std::move(img));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "serve_load: %s\n", e.what());
    return 2;
  }

  Tally tally;
  std::atomic<long> next{0};
  const Clock::time_point start = Clock::now();
  std::vector<std::thread> clients;
  for (int c = 0; c < opt.clients; ++c)
    clients.emplace_back([&] { client_loop(opt, images, next, tally); });
  for (std::thread& t : clients) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();

  json report = {{"seconds", seconds},
                 {"clients", opt.clients},
                 {"images_per_second", tally.images_ok / seconds},
                 {"latency_ms", {{"p50", percentile(tally.latencies_ms, 50)},
                                 {"p90", percentile(tally.latencies_ms, 90)},
                                 {"p99", percentile(tally.latencies_ms, 99)}}},
                 {"refused_connections", tally.refused},
                 {"unanswered", tally.unanswered},
                 {"queue_full_503", tally.queue_full},
                 {"wrong", tally.wrong_count()},
                 {"wrong_examples", tally.wrong}};
  long total = 0;
  for (int k = 0; k < kKinds; ++k) {
    report["sent"][kKindNames[k]] = tally.sent[k];
    report["right"][kKindNames[k]] = tally.right[k];
    total += tally.sent[k];
  }
  report["answered"] = total;
  std::printf("%s\n", report.dump(2).c_str());
  if (!opt.report.empty()) unetind::write_file_atomic(opt.report, report.dump(2) + "\n");
  return tally.wrong_count() == 0 && tally.unanswered == 0 ? 0 : 1;
}
