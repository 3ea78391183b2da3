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

void register_init(CLI::App& app);
void register_predict(CLI::App& app);
void register_train(CLI::App& app);
void register_evaluate(CLI::App& app);
void register_benchmark(CLI::App& app);
void register_synth(CLI::App& app);
void register_import(CLI::App& app);
void register_inspect(CLI::App& app);
void register_export(CLI::App& app);

}  // namespace unetind::cli
