// Backend registry: devices by name, and the CPU thread setting.
#include <omp.h>

#include "backend/cpu/cpu_executor.h"
#include "unetind/backend.h"
#include "unetind/error.h"

namespace unetind {

namespace {
class CpuBackend final : public Backend {
 public:
  std::string name() const override { return "cpu"; }
  std::unique_ptr<Executor> compile(const Graph& graph, const ExecConfig& config) override {
    return cpu::compile_cpu(graph, config);
  }
};
}  // namespace

std::string to_string(Precision p) { return p == Precision::BF16 ? "bf16" : "fp32"; }

Precision parse_precision(const std::string& s) {
  if (s == "fp32") return Precision::F32;
  if (s == "bf16") return Precision::BF16;
  throw Error("unknown precision '" + s + "' (choose from fp32, bf16)");
}

std::vector<std::string> available_backends() { return {"cpu"}; }

std::unique_ptr<Backend> make_backend(const std::string& device, int threads) {
  if (device == "cpu") {
    if (threads > 0) set_cpu_threads(threads);
    return std::make_unique<CpuBackend>();
  }
  std::string names;
  for (const auto& b : available_backends()) names += (names.empty() ? "" : ", ") + b;
  throw Error("unknown device '" + device + "' (available: " + names + ")");
}

void set_cpu_threads(int threads) {
  if (threads > 0) omp_set_num_threads(threads);
}

int cpu_threads() { return omp_get_max_threads(); }

}  // namespace unetind
