#include "device_option.h"

#include "unetind/backend.h"
#include "unetind/error.h"

namespace unetind::cli {

void add_device_option(CLI::App* cmd, std::string& device) {
  // Checked only when given: the default (cpu) needs no CUDA query.
  const CLI::Validator available(
      [](std::string& name) -> std::string {
        try {
          check_device(name);
          return "";
        } catch (const Error& e) {
          return e.what();
        }
      },
      "DEVICE");
  cmd->add_option("--device", device, "Compute device: cpu, cuda or cuda:N (--version lists those visible now)")
      ->check(available)
      ->capture_default_str();
}

}  // namespace unetind::cli
