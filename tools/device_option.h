// --device, the one option helper of every command that runs the model
// (train, evaluate, predict, benchmark, serve): cpu, cuda (the first
// GPU; under mpirun each rank's own) or cuda:N. A name that is not a device
// of this build and machine is refused while parsing, with the list of the
// devices visible now.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

namespace unetind::cli {

void add_device_option(CLI::App* cmd, std::string& device);

}  // namespace unetind::cli
