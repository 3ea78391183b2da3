// The HTTP side of the server on cpp-httplib: routes, error answers, the
// access log and the graceful stop. The protocol itself is in protocol.cpp,
// the model's tensors in model_io.cpp, batching in batcher.cpp.
#include "unetind/server.h"

#include <httplib.h>
#include <linux/filter.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "serve/metrics.h"
#include "serve/model_io.h"
#include "serve/protocol.h"
#include "serve/served_model.h"
#include "serve/web_page.h"
#include "unetind/image_io.h"
#include "unetind/inspection.h"
#include "unetind/overlay.h"
#include "unetind/png.h"

namespace unetind {

using nlohmann::json;
using serve::RequestError;
using serve::ServedModel;
using Clock = std::chrono::steady_clock;

namespace {

// "0.43 from the model file: ..." for the log.
std::string describe_threshold(const ServedModel& m) {
  const ThresholdInUse t = m.threshold();
  char value[32];
  std::snprintf(value, sizeof value, "%g", t.value);
  return std::string(value) + " from " + t.source;
}

constexpr const char* kModelPath = R"(/v2/models/([^/]+)(?:/versions/([^/]+))?)";

int64_t micros_since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t).count();
}

// When the request being handled on this thread began (for the access log).
thread_local Clock::time_point request_start;

const char* status_reason(int status) {
  switch (status) {
    case 400: return "malformed HTTP request";
    case 404: return "no such route";
    case 405: return "method not allowed on this route";
    case 413: return "the request body is larger than the server's limit (--max-body-mb)";
    case 414: return "the request URI is too long";
    default: return "request failed";
  }
}

// Reads the request body through httplib's content reader rather than its
// ordinary body: that path applies the form limit of 8 KiB to every body
// labelled application/x-www-form-urlencoded, which is what `curl -d` sends.
// httplib checks `limit` against Content-Length; a chunked body is checked
// here as it arrives. A multipart upload (`curl -F file=@x.png`, an HTML
// form) gives its first part where `multipart` is allowed. Returns false
// when httplib could not read the body and has set the status (413, 400).
bool read_body(const httplib::Request& req, const httplib::ContentReader& reader, size_t limit, std::string& body,
               bool multipart) {
  bool too_large = false;
  auto append = [&](const char* data, size_t n) {
    if (body.size() + n > limit) return !(too_large = true);
    body.append(data, n);
    return true;
  };
  bool read = false;
  if (!req.is_multipart_form_data()) {
    read = reader(append);
  } else {
    if (!multipart) throw RequestError("send the request as JSON or binary tensors, not as a multipart form");
    int part = 0;
    read = reader([&](const httplib::MultipartFormData&) { return ++part, true; },
                  [&](const char* data, size_t n) { return part == 1 ? append(data, n) : true; });
  }
  if (too_large)
    throw RequestError("the request body is larger than the server's limit of " + std::to_string(limit >> 20) +
                           " MiB (--max-body-mb)",
                       413);
  return read;
}

}  // namespace

ServedModelSpec parse_model_spec(const std::string& text) {
  ServedModelSpec spec;
  const size_t eq = text.find('=');
  if (eq == std::string::npos) {
    spec.path = text;
    spec.name = std::filesystem::path(text).stem().string();
  } else {
    spec.name = text.substr(0, eq);
    spec.path = text.substr(eq + 1);
  }
  if (spec.path.empty()) throw Error("--model " + text + ": no file given");
  if (spec.name.empty()) throw Error("--model " + text + ": the model name is empty");
  if (spec.name.find_first_of("/?#% ") != std::string::npos)
    throw Error("--model " + text + ": a model name may not hold '/', '?', '#', '%' or spaces");
  return spec;
}

struct Server::Impl {
  ServerOptions options;
  serve::ComputeThread compute;  // before the models, which use it to the end
  std::vector<std::unique_ptr<ServedModel>> models;
  httplib::Server http;
  std::atomic<int> listen_fd{-1};
  std::atomic<bool> stopping{false};  // shutdown() was called
  std::atomic<bool> draining{false};  // and the listening socket is shut
  int port = 0;

  explicit Impl(ServerOptions o) : options(std::move(o)) {}

  size_t body_limit() const { return static_cast<size_t>(options.max_body_mb) << 20; }

  void log(const std::string& line) const {
    if (options.log) options.log(line);
  }

  std::vector<ServedModel*> model_list() const {
    std::vector<ServedModel*> list;
    for (const auto& m : models) list.push_back(m.get());
    return list;
  }

  ServedModel* find(const std::string& name) const {
    for (const auto& m : models)
      if (m->name() == name) return m.get();
    return nullptr;
  }

  // The model a route names, or RequestError 404.
  ServedModel& model(const httplib::Request& req) const {
    const std::string name = req.matches[1];
    for (const auto& m : models)
      if (m->name() == name) {
        if (req.matches.size() > 2 && req.matches[2].matched && req.matches[2] != ServedModel::kVersion)
          throw RequestError("model '" + name + "' has no version '" + std::string(req.matches[2]) +
                                 "' (it has version " + ServedModel::kVersion + ")",
                             404);
        return *m;
      }
    std::string names;
    for (const auto& m : models) names += (names.empty() ? "'" : ", '") + m->name() + "'";
    throw RequestError("unknown model '" + name + "' (this server has " + names + ")", 404);
  }

  // Runs a handler: a RequestError becomes its status (503 with
  // Retry-After), any other failure 500, each with {"error": ...}.
  static void guarded(httplib::Response& res, const std::function<void()>& handler) {
    auto fail = [&](int status, const std::string& message) {
      res.status = status;
      res.set_content(serve::error_body(message), "application/json");
      if (status == 503) res.set_header("Retry-After", "1");
    };
    try {
      handler();
    } catch (const RequestError& e) {
      fail(e.status(), e.what());
    } catch (const std::exception& e) {
      fail(500, std::string("internal error: ") + e.what());
    }
  }

  // Runs `count` prepared images of one request through the model's batcher
  // and counts the request's input, queue and compute times.
  serve::BatchOutcome infer(ServedModel& m, std::vector<float> inputs, int count, Clock::time_point start) const {
    if (!m.ready()) throw RequestError("model '" + m.name() + "' is not loaded (POST its /load to load it)", 400);
    const int64_t input_us = micros_since(start);
    std::future<serve::BatchOutcome> pending;
    try {
      pending = m.batcher().submit(std::move(inputs), count);
    } catch (const serve::QueueFull&) {
      throw RequestError("the queue of model '" + m.name() + "' is full (" + std::to_string(options.max_queue) +
                             " requests waiting); retry later",
                         503);
    }
    serve::BatchOutcome out = pending.get();
    serve::ModelStats& s = m.stats();
    s.compute_input_duration_us += input_us;
    s.queue_duration_us += out.queue_time.count();
    s.compute_infer_duration_us += out.compute_time.count();
    return out;
  }

  // Counts a model request that succeeded.
  static void finish(ServedModel& m, Clock::time_point start, Clock::time_point output_start) {
    serve::ModelStats& s = m.stats();
    s.compute_output_duration_us += micros_since(output_start);
    s.request_duration_us += micros_since(start);
    s.request_success += 1;
  }

  void handle_infer(const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
    const Clock::time_point start = Clock::now();
    ServedModel* m = find(req.matches[1]);  // for its statistics; model() answers 404
    guarded(res, [&] {
      std::string body;
      if (!read_body(req, reader, body_limit(), body, false)) return;  // httplib has set 413 or 400
      model(req);
      std::optional<size_t> json_length;
      if (req.has_header("Inference-Header-Content-Length"))
        json_length = serve::parse_header_length(req.get_header_value("Inference-Header-Content-Length"));
      const serve::InferRequest request = serve::parse_infer_request(body, json_length);
      const float threshold = serve::request_threshold(request, m->threshold().value);
      serve::ImageBatch images = serve::images_from_request(request, m->image_size(), options.max_batch);
      const int count = images.count;
      serve::BatchOutcome out = infer(*m, std::move(images.inputs), count, start);
      const Clock::time_point output_start = Clock::now();
      serve::EncodedResponse enc = serve::encode_infer_response(
          m->name(), ServedModel::kVersion, request.id,
          serve::outputs_for(request, images, out.probs, m->image_size(), threshold));
      if (enc.json_length) res.set_header("Inference-Header-Content-Length", std::to_string(*enc.json_length));
      // set_content would copy the body (a megabyte of probabilities at 512x512).
      res.body = std::move(enc.body);
      res.set_header("Content-Type", enc.content_type);
      finish(*m, start, output_start);
    });
    if (res.status >= 400 && m) m->stats().request_failure += 1;
  }

  void handle_inspect(const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
    const Clock::time_point start = Clock::now();
    ServedModel* m = find(req.matches[1]);
    guarded(res, [&] {
      std::string body;
      if (!read_body(req, reader, body_limit(), body, true)) return;  // httplib has set 413 or 400
      model(req);
      const std::string what = req.has_param("return") ? req.get_param_value("return") : "json";
      if (what != "json" && what != "mask" && what != "overlay")
        throw RequestError("?return= must be json, mask or overlay, not '" + what + "'");
      const ThresholdInUse model_threshold = m->threshold();
      float threshold = model_threshold.value;
      std::string threshold_source = model_threshold.source;
      if (req.has_param("threshold")) {
        threshold_source = "?threshold=";
        const std::string t = req.get_param_value("threshold");
        char* end = nullptr;
        threshold = std::strtof(t.c_str(), &end);
        if (t.empty() || *end != '\0' || !(threshold >= 0.0f && threshold <= 1.0f))
          throw RequestError("?threshold= must be a number from 0 to 1, not '" + t + "'");
      }
      if (body.empty())
        throw RequestError(std::string("the request body is empty; send an image (") + kImageFormatsText + ")");
      GrayImage image;
      try {
        image = decode_image_gray(body, "the request body");
      } catch (const Error& e) {
        throw RequestError(e.what());
      }
      const int size = m->image_size();
      serve::BatchOutcome out = infer(*m, prepare_input(image.pixels, image.width, image.height, size), 1, start);
      const Clock::time_point output_start = Clock::now();
      const Inspection r = inspect(out.probs.data(), size, image.width, image.height, threshold);
      const json summary = {{"model", m->name()},
                            {"defect_score", r.defect_score},
                            {"is_defective", r.is_defective},
                            {"defect_pixels", r.defect_pixels},
                            {"threshold", threshold},
                            {"threshold_source", threshold_source},
                            {"width", r.width},
                            {"height", r.height},
                            {"latency_ms", micros_since(start) / 1000.0}};
      if (what == "json") {
        res.set_content(summary.dump(), "application/json");
      } else {
        res.set_header("Inspect-Result", summary.dump());
        res.set_content(what == "mask" ? encode_png_gray8(r.width, r.height, defect_mask(r))
                                       : encode_png_rgb8(make_overlay(image, r.probabilities.data(), threshold, nullptr)),
                        "image/png");
      }
      finish(*m, start, output_start);
    });
    if (res.status >= 400 && m) m->stats().request_failure += 1;
  }

  void handle_ready(const httplib::Request& req, httplib::Response& res, bool one_model) {
    guarded(res, [&] {
      if (draining) throw RequestError("not ready: the server is shutting down", 503);
      if (one_model) {
        ServedModel& m = model(req);
        if (!m.ready()) throw RequestError("model '" + m.name() + "' is not loaded");
        return;
      }
      for (const auto& m : models)
        if (!m->ready()) throw RequestError("not ready: model '" + m->name() + "' is not loaded");
    });
  }

  void handle_load(const httplib::Request& req, httplib::Response& res, bool load) {
    guarded(res, [&] {
      ServedModel& m = model(req);
      if (!load) {
        m.unload();
        log("unloaded model '" + m.name() + "'");
        return;
      }
      try {
        m.reload();
      } catch (const Error& e) {
        log("reload of model '" + m.name() + "' failed, it keeps its previous weights: " + e.what());
        throw RequestError(std::string("failed to load model '") + m.name() + "': " + e.what());
      }
      log("loaded model '" + m.name() + "' from " + m.path() + "; threshold " + describe_threshold(m));
    });
  }

  void add_routes() {
    auto json_reply = [](httplib::Response& res, const json& j) { res.set_content(j.dump(), "application/json"); };
    http.Get("/v2/health/live", [](const httplib::Request&, httplib::Response&) {});
    http.Get("/v2/health/ready",
             [this](const httplib::Request& req, httplib::Response& res) { handle_ready(req, res, false); });
    http.Get("/v2", [=](const httplib::Request&, httplib::Response& res) {
      json_reply(res, {{"name", "unet-industrial"},
                       {"version", UNETIND_VERSION},
                       {"extensions", {"binary_tensor_data", "model_repository", "statistics"}}});
    });
    http.Get(std::string(kModelPath) + "/ready",
             [this](const httplib::Request& req, httplib::Response& res) { handle_ready(req, res, true); });
    http.Get(kModelPath, [=, this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] {
        ServedModel& m = model(req);
        json_reply(res, serve::model_metadata(m.name(), ServedModel::kVersion, m.image_size()));
      });
    });
    http.Get(std::string(kModelPath) + "/config", [=, this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] {
        ServedModel& m = model(req);
        json_reply(res, serve::model_config(m.name(), m.image_size(), options.max_batch, options.max_queue_delay_us,
                                            options.max_queue));
      });
    });
    http.Get("/v2/models/stats", [=, this](const httplib::Request&, httplib::Response& res) {
      json_reply(res, serve::model_statistics(model_list()));
    });
    http.Get(std::string(kModelPath) + "/stats", [=, this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] { json_reply(res, serve::model_statistics({&model(req)})); });
    });
    http.Post(std::string(kModelPath) + "/infer",
              [this](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
                handle_infer(req, res, reader);
              });
    http.Post("/v1/models/([^/]+)/inspect",
              [this](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
                handle_inspect(req, res, reader);
              });
    http.Post("/v2/repository/index", [=, this](const httplib::Request&, httplib::Response& res) {
      json index = json::array();
      for (const auto& m : models)
        index.push_back({{"name", m->name()}, {"version", ServedModel::kVersion},
                         {"state", m->ready() ? "READY" : "UNAVAILABLE"}});
      json_reply(res, index);
    });
    http.Post("/v2/repository/models/([^/]+)/load",
              [this](const httplib::Request& req, httplib::Response& res) { handle_load(req, res, true); });
    http.Post("/v2/repository/models/([^/]+)/unload",
              [this](const httplib::Request& req, httplib::Response& res) { handle_load(req, res, false); });
    http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(serve::prometheus_metrics(model_list()), "text/plain; version=0.0.4");
    });
    http.Get("/", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(serve::web_page_html(), "text/html; charset=utf-8");
    });
  }

  void configure_http() {
    http.new_task_queue = [n = options.http_threads] { return new httplib::ThreadPool(n); };
    http.set_payload_max_length(body_limit());
    http.set_keep_alive_max_count(1000);
    http.set_tcp_nodelay(true);  // small answers must not wait for Nagle's algorithm
    // SO_REUSEADDR only (httplib's default adds SO_REUSEPORT, which would let
    // a second server share the port silently); and the listening socket is
    // kept, so that shutdown() can stop accepting without dropping requests.
    http.set_socket_options([this](int fd) {
      int yes = 1;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
      listen_fd = fd;
    });
    http.set_pre_routing_handler([](const httplib::Request&, httplib::Response&) {
      request_start = Clock::now();
      return httplib::Server::HandlerResponse::Unhandled;
    });
    http.set_post_routing_handler([this](const httplib::Request&, httplib::Response& res) {
      if (draining) res.set_header("Connection", "close");
    });
    http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      std::string message = status_reason(res.status);
      if (res.status == 404) message = "no route " + req.method + " " + req.path;
      res.set_content(serve::error_body(message), "application/json");
    });
    http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      char line[160];
      const bool timed = request_start != Clock::time_point{};
      std::snprintf(line, sizeof line, "%s %d %zu B %.1f ms", req.remote_addr.c_str(), res.status, res.body.size(),
                    timed ? micros_since(request_start) / 1000.0 : 0.0);
      request_start = Clock::time_point{};
      log(std::string(line) + " " + req.method + " " + req.path);
    });
  }
};

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  Impl& s = *impl_;
  if (s.options.models.empty()) throw Error("serve: no model given (--model [NAME=]FILE)");
  if (s.options.max_batch < 1 || s.options.max_queue < 1 || s.options.max_queue_delay_us < 0 ||
      s.options.max_body_mb < 1 || s.options.http_threads < 1)
    throw Error("serve: --max-batch, --max-queue, --max-body-mb and --http-threads must be at least 1, "
                "--max-queue-delay-us at least 0");
  if (s.options.threshold) check_threshold(*s.options.threshold, "--threshold");
  for (size_t i = 0; i < s.options.models.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (s.options.models[i].name == s.options.models[j].name)
        throw Error("serve: two models are named '" + s.options.models[i].name + "'; name them with NAME=FILE");
  for (const ServedModelSpec& spec : s.options.models) {
    s.models.push_back(std::make_unique<ServedModel>(spec, s.options, s.compute));
    s.log("loaded model '" + spec.name + "' from " + spec.path + "; threshold " +
          describe_threshold(*s.models.back()));
  }
  s.configure_http();
  s.add_routes();
  if (s.options.port == 0) {
    s.port = s.http.bind_to_any_port(s.options.host);
  } else {
    s.port = s.http.bind_to_port(s.options.host, s.options.port) ? s.options.port : -1;
  }
  if (s.port <= 0)
    throw Error("serve: cannot listen on " + s.options.host + ":" + std::to_string(s.options.port) +
                " (address in use, or not an address of this machine?)");
}

Server::~Server() {
  shutdown();
  for (auto& m : impl_->models) m->stop();
}

int Server::port() const { return impl_->port; }

void Server::run() {
  Impl& s = *impl_;
  if (!s.stopping) s.http.listen_after_bind();
  // Every HTTP worker has finished, so no request waits on a batcher.
  for (auto& m : s.models) m->stop();
  s.log("stopped: every accepted request was answered");
}

void Server::shutdown() {
  Impl& s = *impl_;
  if (s.stopping.exchange(true)) return;
  const int fd = s.listen_fd.exchange(-1);
  if (fd >= 0) {
    // 1. A socket filter that drops every packet stops new handshakes on the
    //    listening socket (their SYNs go unanswered, and once it is closed
    //    the clients are refused), while the connections the kernel has
    //    already completed stay queued for accept().
    sock_filter drop_all[] = {{BPF_RET | BPF_K, 0, 0, 0}};
    sock_fprog program = {1, drop_all};
    setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof program);
    // 2. httplib's loop accepts what is queued: wait until nothing is.
    pollfd pending = {fd, POLLIN, 0};
    const auto deadline = Clock::now() + std::chrono::seconds(2);
    while (poll(&pending, 1, 0) > 0 && Clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    // 3. Shutting the socket down wakes accept() with an error: httplib stops
    //    accepting and waits for its workers, which answer every request on
    //    the connections it took. (httplib's own stop() would also drop the
    //    connections waiting in its queue and the next request on kept-alive
    //    ones.)
    ::shutdown(fd, SHUT_RDWR);
  }
  // From now on answers carry "Connection: close", so kept-alive clients
  // leave; they cannot reconnect any more.
  s.draining = true;
  s.log("shutting down: no new connections; answering the requests in flight");
}

int Server::reload_all() {
  int failed = 0;
  for (auto& m : impl_->models) {
    try {
      m->reload();
      impl_->log("reloaded model '" + m->name() + "' from " + m->path() + "; threshold " + describe_threshold(*m));
    } catch (const Error& e) {
      ++failed;
      impl_->log("reload of model '" + m->name() + "' failed, it keeps its previous weights: " + e.what());
    }
  }
  return failed;
}

}  // namespace unetind
