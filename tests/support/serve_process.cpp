#include "serve_process.h"

#include <sys/wait.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "test_util.h"

namespace unetind::test {

namespace {
std::string read_all(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}
}  // namespace

ServeProcess::ServeProcess(const std::string& args, const std::string& log) : log_path_(log) {
  pid_ = spawn_cli("serve --port 0 " + args, log);
  const std::string marker = "listening on http://";
  for (int i = 0; i < 600 && port_ == 0; ++i) {  // 60 s: models load and warm up first
    const std::string text = read_all(log);
    const size_t at = text.find(marker);
    if (at != std::string::npos) {
      const size_t colon = text.find(':', at + marker.size());
      const size_t end = text.find('\n', colon);
      if (colon != std::string::npos && end != std::string::npos) port_ = std::stoi(text.substr(colon + 1, end - colon - 1));
    }
    int status = 0;
    if (port_ == 0 && waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("serve exited before listening:\n" + text);
    }
    if (port_ == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (port_ == 0) throw std::runtime_error("serve did not listen within 60 s:\n" + this->log());
}

ServeProcess::~ServeProcess() {
  if (pid_ > 0) stop(SIGKILL, 10);
}

std::string ServeProcess::log() const { return read_all(log_path_); }

int ServeProcess::stop(int sig, double seconds) {
  if (pid_ <= 0) return -1;
  kill(pid_, sig);
  const int code = wait_exit_within(pid_, seconds);
  pid_ = -1;
  return code;
}

long ServeProcess::resident_kb() const {
  std::ifstream status("/proc/" + std::to_string(pid_) + "/status");
  std::string key;
  while (status >> key) {
    if (key == "VmRSS:") {
      long kb = 0;
      status >> kb;
      return kb;
    }
    std::getline(status, key);
  }
  return -1;
}

}  // namespace unetind::test
