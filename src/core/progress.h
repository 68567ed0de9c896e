// Terminal progress bar for long jobs (stderr): "label [#####     ] 42/100 12.3 it/s ETA 0:05 | extra".
// Redraws at most every 100 ms; prints plain lines when stderr is not a terminal.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace jet {

class Progress {
 public:
  Progress(std::string label, int64_t total, std::string unit = "it");
  ~Progress();
  // Advance by n and set the trailing text (e.g. "loss 2.31").
  void update(int64_t n = 1, const std::string& extra = "");
  void finish();
  double rate() const;  // units per second so far

 private:
  void draw(bool final);
  std::string label_, unit_, extra_;
  int64_t total_, done_ = 0;
  bool tty_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace jet
