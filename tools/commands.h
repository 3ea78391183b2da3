// The CLI is a thin layer over the library: each subcommand lives in its own
// file (tools/cmd_<name>.cpp) and defines one register function that adds the
// subcommand, its options and a callback to the app. Callbacks throw
// unetind::Error on failure; main() prints it and exits non-zero.
#pragma once
#include <CLI/CLI.hpp>

namespace unetind::cli {

// A callback that completes but wants a non-zero exit (e.g. `predict` skipped
// a bad file) sets this.
int& exit_code();

// --conv, for the commands that run the model (predict, evaluate, train,
// benchmark).
void add_conv_option(CLI::App* cmd, std::string& conv);

// `predict`'s work, which `demo` runs too.
struct PredictOptions {
  std::string model;
  std::string out;
  float threshold = 0.5f;
  int batch = 8;
  int threads = 0;
  int image_size = 512;
  std::string device = "cpu";
  std::string precision = "fp32";
  std::string conv = "auto";
  std::vector<std::string> inputs;
};
void run_predict(const PredictOptions& options);

void register_init(CLI::App& app);
void register_predict(CLI::App& app);
void register_train(CLI::App& app);
void register_evaluate(CLI::App& app);
void register_benchmark(CLI::App& app);
void register_demo(CLI::App& app);
void register_synth(CLI::App& app);
void register_import(CLI::App& app);
void register_inspect(CLI::App& app);
void register_export(CLI::App& app);

}  // namespace unetind::cli
