// `unet-industrial serve`: the KServe v2 / Triton HTTP inference server
// (the library's Server). SIGTERM and SIGINT stop accepting, answer the
// requests in flight and exit 0; SIGHUP rereads every model's file.
#include <pthread.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <thread>

#include "commands.h"
#include "device_option.h"
#include "unetind/server.h"

namespace unetind::cli {

namespace {

struct ServeCliOptions {
  ServerOptions server;
  std::vector<std::string> models;
  std::string precision = "fp32";
  std::string conv = "auto";
  float threshold = 0;
  bool threshold_given = false;
};

// One line at a time on stderr, each stamped with the UTC time.
void log_line(const std::string& line) {
  static std::mutex mutex;
  char stamp[32];
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
  std::lock_guard<std::mutex> lock(mutex);
  std::fprintf(stderr, "%s %s\n", stamp, line.c_str());
}

void run_serve(ServeCliOptions& opt) {
  for (const std::string& m : opt.models) opt.server.models.push_back(parse_model_spec(m));
  opt.server.precision = inference_precision(opt.precision, opt.server.device);
  opt.server.conv_algorithm = parse_conv_algorithm(opt.conv);
  opt.server.log = log_line;
  if (opt.threshold_given) opt.server.threshold = opt.threshold;

  // Signals are taken by one thread with sigwait, not by a handler: stopping
  // and reloading are not async-signal-safe. They are blocked before any
  // other thread starts, so that every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&signals, s);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  Server server(opt.server);
  std::printf("listening on http://%s:%d\n", opt.server.host.c_str(), server.port());
  std::fflush(stdout);

  std::atomic<bool> stopping{false};
  std::thread signal_thread([&] {
    for (;;) {
      int sig = 0;
      if (sigwait(&signals, &sig) != 0) continue;
      if (sig == SIGHUP) {
        log_line("SIGHUP: reloading every model");
        server.reload_all();
        continue;
      }
      if (!stopping) log_line(sig == SIGTERM ? "SIGTERM" : "SIGINT");
      stopping = true;
      server.shutdown();
      return;
    }
  });
  server.run();
  // run() returns after shutdown(), or if listening failed: then the signal
  // thread is woken to end too.
  if (!stopping.exchange(true)) pthread_kill(signal_thread.native_handle(), SIGTERM);
  signal_thread.join();
}

}  // namespace

void register_serve(CLI::App& app) {
  auto opt = std::make_shared<ServeCliOptions>();
  ServerOptions& s = opt->server;
  CLI::App* cmd = app.add_subcommand(
      "serve", "Serve models over HTTP: KServe v2 / Triton inference protocol, a PNG endpoint, metrics, a web page");
  cmd->add_option("--model", opt->models, "[NAME=]FILE: a weights file to serve, under NAME (default: its stem); "
                                          "repeat for several models")
      ->required();
  cmd->add_option("--host", s.host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", s.port, "Port to listen on (0: any free port)")->check(CLI::Range(0, 65535))
      ->capture_default_str();
  cmd->add_option("--max-batch", s.max_batch, "Images per forward pass at most (dynamic batching)")
      ->capture_default_str();
  cmd->add_option("--max-queue-delay-us", s.max_queue_delay_us,
                  "Longest a request waits for its batch to fill, in microseconds")
      ->capture_default_str();
  cmd->add_option("--max-queue", s.max_queue, "Requests waiting per model at most; more get 503")
      ->capture_default_str();
  cmd->add_option("--max-body-mb", s.max_body_mb, "Largest request body in MiB; larger ones get 413")
      ->capture_default_str();
  cmd->add_option("--http-threads", s.http_threads, "Connections served at once")->capture_default_str();
  cmd->add_option("--image-size", s.image_size, "Model input size: images are cropped or padded to it")
      ->capture_default_str();
  CLI::Option* threshold =
      cmd->add_option("--threshold", opt->threshold,
                      "Decision threshold unless a request gives one (default: each model file's own, from "
                      "evaluate --set-threshold, else 0.5)");
  add_device_option(cmd, s.device);
  add_threads_option(cmd, s.threads);
  add_image_limit_option(cmd);
  add_precision_option(cmd, opt->precision);
  add_conv_option(cmd, opt->conv);
  cmd->callback([opt, threshold] {
    opt->threshold_given = threshold->count() > 0;
    run_serve(*opt);
  });
}

}  // namespace unetind::cli
