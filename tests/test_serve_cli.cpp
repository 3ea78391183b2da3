// `unet-industrial serve` as a program, under load from serve_load (a checked
// load client, bench/serve_load.cpp): thousands of mixed good and malformed
// requests with answers checked against `predict`, resident memory, SIGTERM
// and SIGHUP under load, and start-up errors.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "serve_process.h"
#include "test_util.h"
#include "unetind/atomic_file.h"
#include "unetind/model.h"
#include "unetind/png.h"

namespace unetind {
namespace {

using nlohmann::json;

// Three PNGs of different sizes (cropped, padded, both), a model, and
// predict's probabilities for them at 64x64.
struct Fixture {
  test::TempDir dir;
  std::string model = dir.str("m.safetensors");
  std::vector<std::string> images;

  Fixture() {
    save_parameters(model, init_parameters(ModelConfig{}, Initializer::HeNormal, 11));
    const int sizes[3][2] = {{64, 64}, {100, 80}, {50, 120}};
    for (int i = 0; i < 3; ++i) {
      const auto [w, h] = sizes[i];
      std::vector<uint8_t> pixels(static_cast<size_t>(w) * h);
      const std::vector<float> v = test::random_values(pixels.size(), 100 + i, 0.0f, 255.0f);
      for (size_t k = 0; k < pixels.size(); ++k) pixels[k] = static_cast<uint8_t>(v[k]);
      images.push_back(dir.str("img" + std::to_string(i) + ".png"));
      write_png_gray8(images.back(), w, h, pixels);
    }
    std::string log;
    std::string args = "predict --image-size 64 --model " + model + " --out " + dir.str("expected");
    for (const std::string& img : images) args += " " + img;
    EXPECT_EQ(test::run_cli(args, &log), 0) << log;
  }

  std::string serve_args(const std::string& extra = "") const {
    return "--model m=" + model + " --image-size 64 --threads 2 --max-body-mb 1 " + extra;
  }
};

// How many times `line` stands in the server's log so far.
size_t times_logged(const test::ServeProcess& server, const std::string& line) {
  const std::string log = server.log();
  size_t n = 0;
  for (size_t at = log.find(line); at != std::string::npos; at = log.find(line, at + 1)) ++n;
  return n;
}

// Waits, at most `seconds`, until `line` stands in the log more than `times`
// times: what a server under load has done, not a fixed time, which a busy
// machine may not fill.
void wait_until_logged_more_than(const test::ServeProcess& server, const std::string& line, size_t times,
                                 int seconds) {
  for (int waited = 0; times_logged(server, line) <= times && waited < seconds * 20; ++waited)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
}

// Runs serve_load against `port`; returns its exit code and its report.
int run_load(const Fixture& f, int port, const std::string& args, json* report) {
  const std::string path = f.dir.str("report-" + std::to_string(std::rand()) + ".json");
  std::string cmd = std::string(UNETIND_SERVE_LOAD) + " --port " + std::to_string(port) + " --model m --max-body-mb 1" +
                    " --expected " + f.dir.str("expected") + " --report " + path + " " + args + " --images";
  for (const std::string& img : f.images) cmd += " " + img;
  const int status = std::system((cmd + " >/dev/null 2>&1").c_str());
  *report = json::parse(read_file(path));
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(ServeCli, TwoThousandMixedRequestsGetTheirAnswersAndMemoryStaysFlat) {
  Fixture f;
  test::ServeProcess server(f.serve_args(), f.dir.str("serve.log"));
  json warm, load;
  // A warm-up compiles the executors that batches of 1 to 8 use.
  ASSERT_EQ(run_load(f, server.port(), "--requests 400 --clients 8", &warm), 0) << warm.dump(2);
  const long before = server.resident_kb();
  EXPECT_EQ(run_load(f, server.port(), "--requests 2400 --clients 8 --bad 0.5 --json 0.25", &load), 0)
      << load.dump(2) << server.log();
  const long after = server.resident_kb();
  EXPECT_EQ(load["answered"], 2400);
  EXPECT_EQ(load["wrong"], 0) << load.dump(2);
  EXPECT_EQ(load["unanswered"], 0);
  EXPECT_EQ(load["queue_full_503"], 0);
  for (const char* kind : {"valid_binary", "valid_json", "malformed_json", "wrong_shape", "wrong_datatype",
                           "truncated_binary", "oversized_body", "unknown_model"}) {
    EXPECT_GT(load["sent"][kind].get<int>(), 50) << kind;
    EXPECT_EQ(load["right"][kind], load["sent"][kind]) << kind;
  }
  std::printf("resident memory: %ld kB before the mixed load, %ld kB after\n", before, after);
#if defined(__SANITIZE_ADDRESS__)
  // AddressSanitizer keeps freed memory in quarantine (256 MB by default),
  // so resident memory says nothing here; its LeakSanitizer checks the
  // server when it exits instead, and a leak makes stop() non-zero.
  std::printf("not compared under AddressSanitizer: LeakSanitizer checks the server at exit\n");
#else
  EXPECT_LE(after, before * 1.10) << "resident memory grew from " << before << " kB to " << after << " kB";
#endif
  EXPECT_EQ(server.stop(SIGTERM), 0) << server.log();
}

TEST(ServeCli, SigtermUnderLoadAnswersEveryAcceptedRequestAndExitsZero) {
  Fixture f;
  test::ServeProcess server(f.serve_args(), f.dir.str("serve.log"));
  json report;
  std::thread load([&] { run_load(f, server.port(), "--until-refused --clients 8", &report); });
  // Under load: once 21 requests have been answered (the access log's lines).
  wait_until_logged_more_than(server, "POST /v2/models/m/infer", 20, 60);
  const int code = server.stop(SIGTERM, 30);
  load.join();
  EXPECT_EQ(code, 0) << server.log();
  EXPECT_GT(report["right"]["valid_binary"].get<int>(), 20) << report.dump(2);
  EXPECT_EQ(report["wrong"], 0) << report.dump(2);
  EXPECT_EQ(report["unanswered"], 0) << report.dump(2);
  EXPECT_EQ(report["refused_connections"], 8);  // each client ends on a refused connection
  EXPECT_NE(server.log().find("every accepted request was answered"), std::string::npos) << server.log();
}

TEST(ServeCli, SighupReloadsUnderLoadWithoutFailingARequest) {
  Fixture f;
  test::ServeProcess server(f.serve_args(), f.dir.str("serve.log"));
  json report;
  std::thread load([&] { run_load(f, server.port(), "--requests 800 --clients 4", &report); });
  const std::string weights = read_file(f.model);
  const std::string reloaded = "reloaded model 'm'";
  for (size_t i = 0; i < 3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    write_file_atomic(f.model, weights);  // the same weights, newly written
    kill(server.pid(), SIGHUP);
    // Signals that arrive during a reload merge into one: wait for this one
    // (a reload compiles an executor a batch size, slower on a loaded machine).
    wait_until_logged_more_than(server, reloaded, i, 30);
  }
  // A bad file on SIGHUP: the model keeps its weights and says why.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  write_file_atomic(f.model, "this is not a safetensors file");
  kill(server.pid(), SIGHUP);
  load.join();
  EXPECT_EQ(report["answered"], 800) << report.dump(2);
  EXPECT_EQ(report["wrong"], 0) << report.dump(2);
  EXPECT_EQ(report["unanswered"], 0) << report.dump(2);
  const std::string log = server.log();
  EXPECT_GE(times_logged(server, reloaded), 3u) << log;
  EXPECT_NE(log.find("keeps its previous weights"), std::string::npos) << log;
  EXPECT_EQ(server.stop(SIGTERM), 0) << log;
}

TEST(ServeCli, StartUpErrorsNameTheirCause) {
  Fixture f;
  std::string log;
  write_file_atomic(f.dir.str("bad.safetensors"), "junk");
  EXPECT_EQ(test::run_cli("serve --port 0 --model " + f.dir.str("bad.safetensors"), &log), 1);
  EXPECT_NE(log.find("bad.safetensors"), std::string::npos) << log;
  EXPECT_EQ(test::run_cli("serve --port 0 --model " + f.dir.str("missing.safetensors"), &log), 1);
  EXPECT_NE(log.find("missing.safetensors"), std::string::npos) << log;
  EXPECT_NE(test::run_cli("serve --port 0 --model m=" + f.model + " --threshold 1.5", &log), 0);
  EXPECT_NE(log.find("--threshold"), std::string::npos) << log;
  // A batch that cannot fit is refused at start, not at the first full batch.
  EXPECT_EQ(test::run_cli("serve --port 0 --model m=" + f.model + " --max-batch 100000", &log), 1);
  EXPECT_NE(log.find("inference on a batch of 100000 at image size"), std::string::npos) << log;
  EXPECT_NE(log.find("GB of memory, but this process may use"), std::string::npos) << log;

  test::ServeProcess first(f.serve_args(), f.dir.str("first.log"));
  EXPECT_EQ(test::run_cli("serve --port " + std::to_string(first.port()) + " --model m=" + f.model, &log), 1);
  EXPECT_NE(log.find("cannot listen on 127.0.0.1:" + std::to_string(first.port())), std::string::npos) << log;
}

}  // namespace
}  // namespace unetind
