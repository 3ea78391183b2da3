// A progress bar on stderr, drawn only when stderr is a terminal (logs and
// pipes stay clean).
#pragma once
#include <chrono>
#include <string>

namespace unetind::cli {

class Progress {
 public:
  Progress(std::string label, long total);
  ~Progress();  // ends the line if a bar was drawn
  // done: items finished; extra: shown after the bar (e.g. "loss 0.123").
  void update(long done, const std::string& extra = "");
  bool active() const { return active_; }

 private:
  std::string label_;
  long total_;
  bool active_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace unetind::cli
