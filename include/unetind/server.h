// `unet-industrial serve` as a library: an HTTP inference server speaking the
// KServe v2 / Open Inference Protocol (what Triton, KServe, OpenVINO Model
// Server and Seldon MLServer speak) with Triton's binary tensor extension,
// dynamic batching, Prometheus metrics, a plain PNG endpoint and a web page.
// docs/serving.md describes the routes and their answers.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "unetind/backend.h"

namespace unetind {

struct ServedModelSpec {
  std::string name;  // the name clients use in /v2/models/{name}
  std::string path;  // its weights file (.safetensors), reread on reload
};

// "NAME=FILE" or "FILE" (the name is then the file's stem). Throws Error for
// an empty name or path.
ServedModelSpec parse_model_spec(const std::string& text);

struct ServerOptions {
  std::vector<ServedModelSpec> models;
  std::string host = "127.0.0.1";
  int port = 8000;  // 0: any free port (port() tells which)
  int max_batch = 8;
  int max_queue_delay_us = 2000;
  int max_queue = 64;      // requests waiting per model; more get 503
  int max_body_mb = 64;    // larger bodies get 413
  int http_threads = 32;   // connections served at once
  int image_size = kModelImageSize;
  // The decision threshold unless a request gives one. Unset: each model's
  // own, from its file (evaluate --set-threshold), else 0.5.
  std::optional<float> threshold;
  std::string device = "cpu";
  int threads = 0;         // compute threads (0: one per core)
  Precision precision = Precision::F32;
  ConvAlgorithm conv_algorithm = ConvAlgorithm::Auto;
  // One line per request and per event (reloads, shutdown); the library
  // never prints, the caller decides where lines go.
  std::function<void(const std::string&)> log;
};

class Server {
 public:
  // Loads every model (a bad file throws Error naming it) and binds the
  // port (throws if it cannot).
  explicit Server(ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int port() const;

  // Serves until shutdown(); returns when every accepted request has been
  // answered.
  void run();

  // Stops accepting connections, answers the requests already accepted, and
  // makes run() return. Safe from any thread, more than once.
  void shutdown();

  // Rereads every model's file; a model whose new file is bad keeps its old
  // weights (the reason is logged). Requests in flight are not disturbed.
  // Returns the number of models that failed to reload.
  int reload_all();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace unetind
