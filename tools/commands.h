// The CLI is a thin layer over the library: each subcommand lives in its own
// file (tools/cmd_<name>.cpp) and defines one register function that adds the
// subcommand, its options and a callback to the app. Callbacks throw
// unetind::Error on failure; main() prints it and exits non-zero.
#pragma once
#include <CLI/CLI.hpp>

#include "unetind/predict.h"

namespace unetind::cli {

// A callback that completes but wants a non-zero exit (e.g. `predict` skipped
// a bad file) sets this.
int& exit_code();

// --conv, for the commands that run the model (predict, evaluate, train,
// benchmark).
void add_conv_option(CLI::App* cmd, std::string& conv);

// --precision, for the commands that run inference (predict, evaluate,
// benchmark, serve), and its value parsed, with what the user should know
// about it on `device` printed to stderr (int8 without VNNI).
void add_precision_option(CLI::App* cmd, std::string& precision);
Precision inference_precision(const std::string& precision, const std::string& device);

// A whole number of at least `least`; the message names the option.
CLI::Validator at_least(long long least);

// --threads, for the commands that compute: 0 (one per core) up to the CPUs
// this process may use.
void add_threads_option(CLI::App* cmd, int& threads);

// --max-image-pixels (or UNETIND_MAX_IMAGE_PIXELS), for the commands that
// read images: the process's limit (png.h's set_max_image_pixels).
void add_image_limit_option(CLI::App* cmd);

// Runs predict_files with a progress bar, prints each bad file and the
// summary (with where the threshold came from), and sets a non-zero exit
// code if any file failed: `predict`'s output, which `demo` shows too.
void predict_and_report(Predictor& predictor, const std::vector<std::string>& files,
                        const PredictFilesOptions& options, const std::string& threshold_source);

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
void register_serve(CLI::App& app);
void register_calibrate(CLI::App& app);

}  // namespace unetind::cli
