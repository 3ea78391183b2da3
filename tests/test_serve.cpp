// The inference server in this process (the library's Server on a free
// port), through an HTTP client: every route, every error answer, batching,
// a full queue, reloads, and a stop under load. test_serve_cli runs the real
// program under signals and load; tests/serve/*.py run other clients.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "serve/compute_thread.h"
#include "test_util.h"
#include "unetind/atomic_file.h"
#include "unetind/error.h"
#include "unetind/inspection.h"
#include "unetind/operating_threshold.h"
#include "unetind/png.h"
#include "unetind/predictor.h"
#include "unetind/server.h"

namespace unetind {
namespace {

using nlohmann::json;
constexpr int kSize = 64;  // small images keep the forward passes quick

std::string save_model(const test::TempDir& dir, const std::string& name, uint64_t seed) {
  const std::string path = dir.str(name + ".safetensors");
  save_parameters(path, init_parameters(ModelConfig{}, Initializer::HeNormal, seed));
  return path;
}

// A Server running on its own thread; stopped and joined at the end.
class LocalServer {
 public:
  explicit LocalServer(ServerOptions options) {
    options.port = 0;
    options.log = [this](const std::string& line) {
      std::lock_guard<std::mutex> lock(log_mutex_);
      log_ += line + "\n";
    };
    server_ = std::make_unique<Server>(std::move(options));
    thread_ = std::thread([this] { server_->run(); });
  }
  ~LocalServer() { stop(); }
  void stop() {
    server_->shutdown();
    if (thread_.joinable()) thread_.join();
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", server_->port());
    c.set_read_timeout(60, 0);
    return c;
  }
  Server& server() { return *server_; }
  std::string log() {
    std::lock_guard<std::mutex> lock(log_mutex_);
    return log_;
  }

 private:
  std::unique_ptr<Server> server_;
  std::thread thread_;
  std::mutex log_mutex_;
  std::string log_;
};

ServerOptions options_for(const std::vector<std::pair<std::string, std::string>>& models) {
  ServerOptions o;
  for (const auto& [name, path] : models) o.models.push_back({name, path});
  o.image_size = kSize;
  o.threads = 2;
  return o;
}

// A deterministic gray image of any size.
GrayImage test_image(int width, int height, uint64_t seed) {
  GrayImage g;
  g.width = width;
  g.height = height;
  g.pixels = test::random_values(static_cast<size_t>(width) * height, seed, 0.0f, 255.0f);
  for (float& p : g.pixels) p = std::round(p);
  return g;
}

// A KServe binary request for one UINT8 image (all outputs, binary).
std::pair<std::string, httplib::Headers> binary_request(const GrayImage& g, const json& extra = json::object()) {
  std::string pixels;
  for (float p : g.pixels) pixels.push_back(static_cast<char>(static_cast<uint8_t>(p)));
  json header = {{"inputs", {{{"name", "images"}, {"datatype", "UINT8"}, {"shape", {1, g.height, g.width, 1}},
                              {"parameters", {{"binary_data_size", pixels.size()}}}}}},
                 {"parameters", {{"binary_data_output", true}}}};
  header.update(extra);
  const std::string h = header.dump();
  return {h + pixels, {{"Inference-Header-Content-Length", std::to_string(h.size())}}};
}

// The outputs of a binary or JSON answer, by name: raw bytes (binary) or data.
struct Answer {
  json header;
  std::map<std::string, std::string> binary;
  std::vector<float> floats(const std::string& name) const {
    std::vector<float> v;
    if (binary.count(name)) {
      v.resize(binary.at(name).size() / 4);
      std::memcpy(v.data(), binary.at(name).data(), v.size() * 4);
    } else {
      for (const json& o : header["outputs"])
        if (o["name"] == name)
          for (const json& x : o["data"]) v.push_back(x.get<float>());
    }
    return v;
  }
};

Answer parse_answer(const httplib::Result& res) {
  Answer a;
  size_t n = res->body.size();
  if (res->has_header("Inference-Header-Content-Length")) n = std::stoul(res->get_header_value("Inference-Header-Content-Length"));
  a.header = json::parse(res->body.substr(0, n));
  size_t at = n;
  for (const json& o : a.header["outputs"])
    if (o.contains("parameters") && o["parameters"].contains("binary_data_size")) {
      const size_t bytes = o["parameters"]["binary_data_size"].get<size_t>();
      a.binary[o["name"].get<std::string>()] = res->body.substr(at, bytes);
      at += bytes;
    }
  EXPECT_EQ(at, res->body.size());
  return a;
}

// What the model says about an image, straight from a Predictor.
std::vector<float> predicted(const std::string& model, const GrayImage& g) {
  Predictor p(load_parameters(model), make_backend("cpu", 2), kSize, Precision::F32);
  std::vector<float> in = prepare_input(g.pixels, g.width, g.height, kSize), out(in.size());
  p.run(in.data(), 1, out.data());
  return out;
}

// The value of a metric line `name{model="m",version="1"} value`.
double metric(const std::string& text, const std::string& name, const std::string& model) {
  const std::string key = name + "{model=\"" + model + "\",version=\"1\"} ";
  const size_t at = text.find(key);
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + key.size()));
}

TEST(Serve, HealthMetadataAndRepository) {
  test::TempDir dir;
  LocalServer s(options_for({{"class1", save_model(dir, "a", 1)}, {"class2", save_model(dir, "b", 2)}}));
  httplib::Client c = s.client();
  EXPECT_EQ(c.Get("/v2/health/live")->status, 200);
  EXPECT_EQ(c.Get("/v2/health/ready")->status, 200);
  const json server = json::parse(c.Get("/v2")->body);
  EXPECT_EQ(server["name"], "unet-industrial");
  EXPECT_NE(server["extensions"].dump().find("binary_tensor_data"), std::string::npos);

  for (const char* path : {"/v2/models/class2", "/v2/models/class2/versions/1"}) {
    auto res = c.Get(path);
    ASSERT_EQ(res->status, 200) << path;
    const json m = json::parse(res->body);
    EXPECT_EQ(m["name"], "class2");
    EXPECT_EQ(m["inputs"][0]["name"], "images");
    EXPECT_EQ(m["outputs"][0]["shape"], json::parse("[-1, 64, 64, 1]"));
  }
  EXPECT_EQ(c.Get("/v2/models/class1/ready")->status, 200);
  EXPECT_EQ(c.Get("/v2/models/class1/versions/1/ready")->status, 200);
  EXPECT_EQ(json::parse(c.Get("/v2/models/class1/config")->body)["max_batch_size"], 8);
  EXPECT_EQ(json::parse(c.Post("/v2/repository/index", "", "application/json")->body).size(), 2u);

  auto unknown = c.Get("/v2/models/class9");
  EXPECT_EQ(unknown->status, 404);
  EXPECT_NE(json::parse(unknown->body)["error"].get<std::string>().find("unknown model 'class9'"), std::string::npos);
  auto version = c.Get("/v2/models/class1/versions/2/ready");
  EXPECT_EQ(version->status, 404);
  EXPECT_NE(version->body.find("no version '2'"), std::string::npos);
  auto route = c.Get("/v3/nothing");
  EXPECT_EQ(route->status, 404);
  EXPECT_EQ(json::parse(route->body)["error"], "no route GET /v3/nothing");
}

TEST(Serve, InferenceEqualsThePredictorInBinaryAndJson) {
  test::TempDir dir;
  const std::string model = save_model(dir, "m", 5);
  LocalServer s(options_for({{"m", model}}));
  httplib::Client c = s.client();
  const GrayImage g = test_image(70, 50, 3);  // cropped in width, padded in height
  const std::vector<float> expected = predicted(model, g);

  auto [body, headers] = binary_request(g, {{"id", "abc"}});
  auto res = c.Post("/v2/models/m/infer", headers, body, "application/octet-stream");
  ASSERT_EQ(res->status, 200) << res->body;
  const Answer a = parse_answer(res);
  EXPECT_EQ(a.header["id"], "abc");
  EXPECT_EQ(a.header["model_name"], "m");
  EXPECT_LE(test::max_abs_diff(a.floats("probabilities"), expected), 1e-6);
  const Inspection r = inspect(expected.data(), kSize, g.width, g.height, 0.5f);
  EXPECT_FLOAT_EQ(a.floats("defect_score")[0], r.defect_score);
  EXPECT_EQ(a.binary.at("is_defective"), std::string(1, r.is_defective ? 1 : 0));
  const std::vector<float> in_view = probabilities_in_model_view(r, kSize);
  const std::string& mask = a.binary.at("mask");
  ASSERT_EQ(mask.size(), in_view.size());
  for (size_t i = 0; i < mask.size(); ++i) ASSERT_EQ(static_cast<uint8_t>(mask[i]), in_view[i] > 0.5f ? 255 : 0) << i;

  // The same image as JSON UINT8 and as FP32 scaled to [-1, 1].
  json data = json::array(), scaled = json::array();
  for (float p : g.pixels) {
    data.push_back(static_cast<int>(p));
    scaled.push_back(p / 127.5f - 1.0f);
  }
  for (const auto& [type, values] : {std::pair{"UINT8", data}, std::pair{"FP32", scaled}}) {
    const json req = {{"inputs", {{{"name", "images"}, {"datatype", type}, {"shape", {1, g.height, g.width, 1}},
                                   {"data", values}}}},
                      {"outputs", {{{"name", "probabilities"}}}}};
    auto j = c.Post("/v2/models/m/infer", req.dump(), "application/json");
    ASSERT_EQ(j->status, 200) << j->body;
    EXPECT_FALSE(j->has_header("Inference-Header-Content-Length"));
    const Answer ja = parse_answer(j);
    EXPECT_EQ(ja.header["outputs"].size(), 1u);
    EXPECT_LE(test::max_abs_diff(ja.floats("probabilities"), expected), 1e-6) << type;
  }
}

TEST(Serve, BadRequestsGetTheir4xxAndTheServerGoesOn) {
  test::TempDir dir;
  ServerOptions o = options_for({{"m", save_model(dir, "m", 5)}});
  o.max_body_mb = 1;
  LocalServer s(o);
  httplib::Client c = s.client();
  struct Case {
    std::string path, body, content_type;
    int status;
    std::string message_part;
  };
  const std::vector<Case> cases = {
      {"/v2/models/m/infer", "{not json", "application/json", 400, "not valid JSON"},
      // curl -d labels bodies as a form; the server still reads them whole.
      {"/v2/models/m/infer", R"({"inputs": [{"name": "x", "datatype": "UINT8", "shape": [1], "data": [1]}]})",
       "application/x-www-form-urlencoded", 400, "takes one input, 'images'"},
      {"/v2/models/m/infer", R"({"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1], "data": ["a"]}]})",
       "application/json", 400, "FP32 (scaled to [-1, 1]) or UINT8"},
      {"/v2/models/zz/infer", R"({"inputs": []})", "application/json", 404, "unknown model 'zz'"},
      {"/v2/models/m/infer", std::string(1500000, ' '), "application/json", 413, "limit"},
      {"/v1/models/m/inspect", "GIF89a...", "image/gif", 400, "not an image in a format read here"},
      {"/v1/models/m/inspect", "", "image/png", 400, "empty"},
      // A few bytes that declare 10^10 pixels: refused from the header.
      {"/v1/models/m/inspect", test::png_declaring(100000, 100000), "image/png", 400,
       "the request body: image is 100000x100000 pixels, more than the limit"},
  };
  for (const Case& k : cases) {
    auto res = c.Post(k.path.c_str(), k.body, k.content_type.c_str());
    ASSERT_TRUE(res) << k.path;
    EXPECT_EQ(res->status, k.status) << k.body.substr(0, 80);
    const json e = json::parse(res->body, nullptr, false);
    ASSERT_TRUE(e.is_object() && e.contains("error")) << res->body;
    EXPECT_NE(e["error"].get<std::string>().find(k.message_part), std::string::npos) << e.dump();
  }
  // A large JSON request labelled as a form is read whole (httplib's form
  // path would cut such bodies at 8 KiB).
  json big = {{"inputs", {{{"name", "images"}, {"datatype", "UINT8"}, {"shape", {1, 64, 64, 1}},
                           {"data", std::vector<int>(64 * 64, 7)}}}}};
  EXPECT_EQ(c.Post("/v2/models/m/infer", big.dump(), "application/x-www-form-urlencoded")->status, 200);

  const std::string metrics = c.Get("/metrics")->body;
  EXPECT_EQ(metric(metrics, "nv_inference_request_success", "m"), 1);
  EXPECT_EQ(metric(metrics, "nv_inference_request_failure", "m"), 7);  // all but the unknown model's
}

TEST(Serve, ConcurrentRequestsShareForwardPasses) {
  test::TempDir dir;
  ServerOptions o = options_for({{"m", save_model(dir, "m", 5)}});
  o.max_queue_delay_us = 500000;  // long enough for every client to join
  LocalServer s(o);
  const GrayImage g = test_image(64, 64, 9);
  constexpr int kClients = 8;
  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i)
    clients.emplace_back([&] {
      auto [body, headers] = binary_request(g);
      if (s.client().Post("/v2/models/m/infer", headers, body, "application/octet-stream")->status == 200) ++ok;
    });
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok, kClients);
  httplib::Client c = s.client();
  const std::string metrics = c.Get("/metrics")->body;
  const double count = metric(metrics, "nv_inference_count", "m"), execs = metric(metrics, "nv_inference_exec_count", "m");
  EXPECT_EQ(count, kClients);
  EXPECT_LT(execs, count) << "no two requests ran in one forward pass";
  EXPECT_GT(metric(metrics, "nv_inference_queue_duration_us", "m"), 0);
  EXPECT_NE(metrics.find("process_resident_memory_bytes "), std::string::npos);
  const json stats = json::parse(c.Get("/v2/models/m/stats")->body);
  EXPECT_EQ(stats["model_stats"][0]["inference_count"], kClients);
}

TEST(Serve, AFullQueueAnswers503WithRetryAfter) {
  test::TempDir dir;
  ServerOptions o = options_for({{"m", save_model(dir, "m", 5)}});
  o.image_size = 256;  // slow enough passes that the queue fills
  o.max_batch = 1;
  o.max_queue = 1;
  LocalServer s(o);
  const GrayImage g = test_image(256, 256, 9);
  std::atomic<int> ok{0}, full{0}, other{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 12; ++i)
    clients.emplace_back([&] {
      auto [body, headers] = binary_request(g);
      auto res = s.client().Post("/v2/models/m/infer", headers, body, "application/octet-stream");
      if (res && res->status == 200) {
        ++ok;
      } else if (res && res->status == 503 && res->get_header_value("Retry-After") == "1" &&
                 res->body.find("queue of model 'm' is full") != std::string::npos) {
        ++full;
      } else {
        ++other;
      }
    });
  for (auto& t : clients) t.join();
  EXPECT_GT(full, 0);
  EXPECT_GT(ok, 0);
  EXPECT_EQ(other, 0);
}

TEST(Serve, ReloadSwapsWeightsAndABadFileKeepsTheOld) {
  test::TempDir dir;
  const std::string model = dir.str("m.safetensors");
  save_parameters(model, init_parameters(ModelConfig{}, Initializer::HeNormal, 1));
  LocalServer s(options_for({{"m", model}}));
  httplib::Client c = s.client();
  const GrayImage g = test_image(64, 64, 2);
  auto probs = [&] {
    auto [body, headers] = binary_request(g);
    auto res = c.Post("/v2/models/m/infer", headers, body, "application/octet-stream");
    EXPECT_EQ(res->status, 200);
    return parse_answer(res).floats("probabilities");
  };
  const std::vector<float> before = probs();

  save_parameters(model, init_parameters(ModelConfig{}, Initializer::HeNormal, 2));
  EXPECT_EQ(c.Post("/v2/repository/models/m/load", "", "application/json")->status, 200);
  const std::vector<float> after = probs();
  EXPECT_LE(test::max_abs_diff(after, predicted(model, g)), 1e-6);
  EXPECT_GT(test::max_abs_diff(after, before), 1e-3);

  write_file_atomic(model, "not a safetensors file");
  auto bad = c.Post("/v2/repository/models/m/load", "", "application/json");
  EXPECT_EQ(bad->status, 400);
  EXPECT_NE(bad->body.find(model), std::string::npos) << bad->body;
  EXPECT_EQ(s.server().reload_all(), 1);
  EXPECT_NE(s.log().find("keeps its previous weights"), std::string::npos) << s.log();
  EXPECT_EQ(probs(), after);

  EXPECT_EQ(c.Post("/v2/repository/models/m/unload", "", "application/json")->status, 200);
  EXPECT_EQ(c.Get("/v2/models/m/ready")->status, 400);
  EXPECT_EQ(c.Get("/v2/health/ready")->status, 400);
  auto [body, headers] = binary_request(g);
  EXPECT_EQ(c.Post("/v2/models/m/infer", headers, body, "application/octet-stream")->status, 400);
}

TEST(Serve, StopUnderLoadAnswersEveryAcceptedRequest) {
  test::TempDir dir;
  LocalServer s(options_for({{"m", save_model(dir, "m", 5)}}));
  const GrayImage g = test_image(64, 64, 4);
  constexpr int kClients = 6;
  std::atomic<int> answered{0}, wrong{0}, unanswered{0}, connected{0};
  std::atomic<bool> go{true};
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i)
    clients.emplace_back([&] {
      httplib::Client c = s.client();
      auto [body, headers] = binary_request(g);
      for (bool first = true; go; first = false) {
        auto res = c.Post("/v2/models/m/infer", headers, body, "application/octet-stream");
        if (!res) {
          // Refused (the server stopped accepting) is fine; sent and not
          // answered is a lost request.
          if (res.error() != httplib::Error::Connection && res.error() != httplib::Error::Write) {
            ++unanswered;
            ADD_FAILURE() << "a request was sent and not answered: " << httplib::to_string(res.error());
          }
          return;
        }
        ++(res->status == 200 ? answered : wrong);
        if (first) ++connected;
      }
    });
  // Every client is running; they open a connection a request (httplib's
  // client does not keep connections alive unless told), the hardest case.
  while (connected < kClients || answered < 30) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  s.stop();  // returns once every accepted request is answered
  go = false;
  for (auto& t : clients) t.join();
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(unanswered, 0);
  EXPECT_NE(s.log().find("every accepted request was answered"), std::string::npos);
}

TEST(Serve, InspectTakesAPngAndAnswersInTheImagesGeometry) {
  test::TempDir dir;
  const std::string model = save_model(dir, "m", 5);
  LocalServer s(options_for({{"m", model}}));
  httplib::Client c = s.client();
  const GrayImage g = test_image(90, 40, 6);
  std::vector<uint8_t> bytes(g.pixels.begin(), g.pixels.end());
  const std::string png = encode_png_gray8(g.width, g.height, bytes);
  const Inspection expected = inspect(predicted(model, g).data(), kSize, g.width, g.height, 0.3f);

  auto res = c.Post("/v1/models/m/inspect?threshold=0.3", png, "image/png");
  ASSERT_EQ(res->status, 200) << res->body;
  const json j = json::parse(res->body);
  EXPECT_EQ(j["width"], 90);
  EXPECT_EQ(j["height"], 40);
  EXPECT_FLOAT_EQ(j["defect_score"].get<float>(), expected.defect_score);
  EXPECT_EQ(j["defect_pixels"], expected.defect_pixels);
  EXPECT_EQ(j["is_defective"], expected.is_defective);
  EXPECT_GT(j["latency_ms"].get<double>(), 0);

  auto mask = c.Post("/v1/models/m/inspect?return=mask&threshold=0.3", png, "image/png");
  ASSERT_EQ(mask->status, 200);
  EXPECT_EQ(mask->get_header_value("Content-Type"), "image/png");
  const GrayImage m = decode_png_gray(mask->body, "mask");
  EXPECT_EQ(m.width, 90);
  EXPECT_EQ(m.height, 40);
  const std::vector<uint8_t> want = defect_mask(expected);
  EXPECT_TRUE(std::equal(want.begin(), want.end(), m.pixels.begin(), [](uint8_t a, float b) { return a == b; }));
  EXPECT_EQ(json::parse(mask->get_header_value("Inspect-Result"))["defect_pixels"], expected.defect_pixels);

  auto overlay = c.Post("/v1/models/m/inspect?return=overlay", png, "image/png");
  ASSERT_EQ(overlay->status, 200);
  EXPECT_EQ(decode_png_gray(overlay->body, "overlay").width, 90);
  EXPECT_EQ(c.Post("/v1/models/m/inspect?return=jpeg", png, "image/png")->status, 400);
  EXPECT_EQ(c.Post("/v1/models/m/inspect?threshold=nan", png, "image/png")->status, 400);

  // A multipart upload, as `curl -F file=@image.png` sends it.
  httplib::MultipartFormDataItems form = {{"file", png, "image.png", "image/png"}};
  auto multipart = c.Post("/v1/models/m/inspect?threshold=0.3", form);
  ASSERT_EQ(multipart->status, 200) << multipart->body;
  EXPECT_EQ(json::parse(multipart->body)["defect_pixels"], expected.defect_pixels);
}

// The image endpoint reads what cameras write (here a PGM, a format told by
// its content), and a model's own threshold from its file is the default
// that the answer names; --threshold overrides every model's.
TEST(Serve, InspectTakesOtherFormatsAndTheModelFilesThreshold) {
  test::TempDir dir;
  const std::string model = save_model(dir, "m", 5);
  OperatingThreshold carried;
  carried.threshold = 0.25f;
  carried.rule = "value";
  carried.split = "Test";
  carried.data = "synthetic";
  store_operating_threshold(model, carried, load_parameters(model));
  const GrayImage g = test_image(30, 20, 7);
  std::string pgm = "P5\n30 20\n255\n";
  for (float v : g.pixels) pgm += static_cast<char>(static_cast<uint8_t>(v));
  const Inspection expected = inspect(predicted(model, g).data(), kSize, g.width, g.height, 0.25f);
  {
    LocalServer s(options_for({{"m", model}}));
    auto res = s.client().Post("/v1/models/m/inspect", pgm, "image/x-portable-graymap");
    ASSERT_EQ(res->status, 200) << res->body;
    const json j = json::parse(res->body);
    EXPECT_FLOAT_EQ(j["threshold"].get<float>(), 0.25f);
    EXPECT_EQ(j["threshold_source"].get<std::string>().rfind("the model file: 0.25", 0), 0u) << j.dump();
    EXPECT_FLOAT_EQ(j["defect_score"].get<float>(), expected.defect_score);
    EXPECT_EQ(j["defect_pixels"], expected.defect_pixels);
    EXPECT_NE(s.log().find("threshold 0.25 from the model file"), std::string::npos) << s.log();
    auto bad = s.client().Post("/v1/models/m/inspect", std::string("P5\n30 20\n255\nshort"), "image/x-pgm");
    EXPECT_EQ(bad->status, 400);
    EXPECT_NE(bad->body.find("the request body"), std::string::npos) << bad->body;
  }
  ServerOptions o = options_for({{"m", model}});
  o.threshold = 0.6f;
  LocalServer s(o);
  const json j = json::parse(s.client().Post("/v1/models/m/inspect", pgm, "image/x-pgm")->body);
  EXPECT_FLOAT_EQ(j["threshold"].get<float>(), 0.6f);
  EXPECT_EQ(j["threshold_source"], "--threshold");
}

TEST(Serve, TheWebPageNeedsNothingFromElsewhere) {
  test::TempDir dir;
  LocalServer s(options_for({{"m", save_model(dir, "m", 5)}}));
  auto res = s.client().Get("/");
  ASSERT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_NE(res->body.find("/v1/models/"), std::string::npos);
  for (const char* external : {"http://", "https://", "//cdn", "<link"})
    EXPECT_EQ(res->body.find(external), std::string::npos) << external;
}

TEST(Serve, RefusesBadSetUp) {
  test::TempDir dir;
  const std::string model = save_model(dir, "m", 5);
  EXPECT_THROW(Server{options_for({})}, Error);
  EXPECT_THROW((Server{options_for({{"a", model}, {"a", model}})}), Error);
  write_file_atomic(dir.str("bad.safetensors"), "junk");
  try {
    Server bad(options_for({{"b", dir.str("bad.safetensors")}}));
    ADD_FAILURE() << "a bad weights file was served";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.safetensors"), std::string::npos) << e.what();
  }
  EXPECT_EQ(parse_model_spec("dir/class3.safetensors").name, "class3");
  EXPECT_EQ(parse_model_spec("c1=dir/x.safetensors").name, "c1");
  EXPECT_EQ(parse_model_spec("c1=dir/x.safetensors").path, "dir/x.safetensors");
  EXPECT_THROW(parse_model_spec("=x.safetensors"), Error);
  EXPECT_THROW(parse_model_spec("a/b=x.safetensors"), Error);
}

// The server's forward passes and loads, submitted from every model's
// batching thread, HTTP threads and the main thread, run on one thread, one
// after another (compute_thread.h says why), and a failure reaches the
// caller that submitted it.
TEST(ComputeThread, RunsWorkFromEveryThreadOnOneThreadAndHandsBackErrors) {
  serve::ComputeThread compute;
  std::mutex mutex;
  std::vector<std::thread::id> ran_on;
  int running = 0, most_at_once = 0;
  auto work = [&] {
    {
      std::lock_guard<std::mutex> lock(mutex);
      ran_on.push_back(std::this_thread::get_id());
      most_at_once = std::max(most_at_once, ++running);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    std::lock_guard<std::mutex> lock(mutex);
    --running;
  };
  std::vector<std::thread> callers;
  for (int i = 0; i < 4; ++i)
    callers.emplace_back([&] {
      for (int j = 0; j < 5; ++j) compute.run(work);
    });
  compute.run(work);
  for (std::thread& t : callers) t.join();
  ASSERT_EQ(ran_on.size(), 21u);
  for (const std::thread::id& id : ran_on) EXPECT_EQ(id, ran_on.front());
  EXPECT_NE(ran_on.front(), std::this_thread::get_id());
  EXPECT_EQ(most_at_once, 1);
  EXPECT_THROW(compute.run([] { throw Error("a forward pass failed"); }), Error);
  compute.run(work);  // and it goes on
  EXPECT_EQ(ran_on.back(), ran_on.front());
}

}  // namespace
}  // namespace unetind
