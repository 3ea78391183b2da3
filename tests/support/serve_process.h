// A `unet-industrial serve` child process on a free port, for the tests that
// need the real program: signals, resident memory, other clients.
#pragma once
#include <sys/types.h>

#include <csignal>
#include <string>

namespace unetind::test {

class ServeProcess {
 public:
  // Starts `serve --port 0 <args>` with its output in `log`, and waits until
  // it listens; throws std::runtime_error with the log when it does not.
  ServeProcess(const std::string& args, const std::string& log);
  ~ServeProcess();  // kills it if it still runs
  ServeProcess(const ServeProcess&) = delete;
  ServeProcess& operator=(const ServeProcess&) = delete;

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string log() const;
  // Sends `sig` and waits for the exit code (-1: still running after `seconds`, then killed).
  int stop(int sig = SIGTERM, double seconds = 30);
  // VmRSS from /proc/<pid>/status, in kB.
  long resident_kb() const;

 private:
  std::string log_path_;
  pid_t pid_ = -1;
  int port_ = 0;
};

}  // namespace unetind::test
