#include "serve/metrics.h"

#include <unistd.h>

#include <fstream>
#include <sstream>

namespace unetind::serve {

namespace {

struct Counter {
  const char* name;
  const char* help;
  std::atomic<uint64_t> ModelStats::*field;
};

const Counter kCounters[] = {
    {"nv_inference_request_success", "Number of successful inference requests, all batch sizes",
     &ModelStats::request_success},
    {"nv_inference_request_failure", "Number of failed inference requests, all batch sizes",
     &ModelStats::request_failure},
    {"nv_inference_count", "Number of inferences performed (images)", &ModelStats::inference_count},
    {"nv_inference_exec_count", "Number of model executions performed (batches)", &ModelStats::exec_count},
    {"nv_inference_request_duration_us", "Cumulative inference request duration in microseconds",
     &ModelStats::request_duration_us},
    {"nv_inference_queue_duration_us", "Cumulative inference queuing duration in microseconds",
     &ModelStats::queue_duration_us},
    {"nv_inference_compute_input_duration_us", "Cumulative compute input duration in microseconds",
     &ModelStats::compute_input_duration_us},
    {"nv_inference_compute_infer_duration_us", "Cumulative compute inference duration in microseconds",
     &ModelStats::compute_infer_duration_us},
    {"nv_inference_compute_output_duration_us", "Cumulative inference compute output duration in microseconds",
     &ModelStats::compute_output_duration_us},
};

// Resident set size from /proc/self/statm (pages).
uint64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

// MemTotal and MemAvailable from /proc/meminfo, in bytes.
void system_memory(uint64_t& total, uint64_t& available) {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  uint64_t kb = 0;
  std::string unit;
  total = available = 0;
  while (meminfo >> key >> kb >> unit) {
    if (key == "MemTotal:") total = kb * 1024;
    if (key == "MemAvailable:") available = kb * 1024;
  }
}

void gauge(std::ostringstream& out, const char* name, const char* help, uint64_t value) {
  out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << " gauge\n" << name << ' ' << value << '\n';
}

}  // namespace

std::string prometheus_metrics(const std::vector<ServedModel*>& models) {
  std::ostringstream out;
  for (const Counter& c : kCounters) {
    out << "# HELP " << c.name << ' ' << c.help << "\n# TYPE " << c.name << " counter\n";
    for (ServedModel* m : models)
      out << c.name << "{model=\"" << m->name() << "\",version=\"" << ServedModel::kVersion << "\"} "
          << (m->stats().*c.field).load() << '\n';
  }
  uint64_t total = 0, available = 0;
  system_memory(total, available);
  gauge(out, "nv_cpu_memory_total_bytes", "CPU total memory (RAM), in bytes", total);
  gauge(out, "nv_cpu_memory_used_bytes", "CPU used memory (RAM), in bytes", total - available);
  gauge(out, "process_resident_memory_bytes", "Resident memory size of this server process, in bytes",
        resident_bytes());
  return out.str();
}

nlohmann::json model_statistics(const std::vector<ServedModel*>& models) {
  using nlohmann::json;
  json stats = json::array();
  for (ServedModel* m : models) {
    ModelStats& s = m->stats();
    auto duration = [](uint64_t count, uint64_t us) { return json{{"count", count}, {"ns", us * 1000}}; };
    const uint64_t ok = s.request_success;
    stats.push_back({{"name", m->name()},
                     {"version", ServedModel::kVersion},
                     {"inference_count", s.inference_count.load()},
                     {"execution_count", s.exec_count.load()},
                     {"inference_stats",
                      {{"success", duration(ok, s.request_duration_us)},
                       {"fail", duration(s.request_failure, 0)},
                       {"queue", duration(ok, s.queue_duration_us)},
                       {"compute_input", duration(ok, s.compute_input_duration_us)},
                       {"compute_infer", duration(ok, s.compute_infer_duration_us)},
                       {"compute_output", duration(ok, s.compute_output_duration_us)}}}});
  }
  return {{"model_stats", stats}};
}

}  // namespace unetind::serve
