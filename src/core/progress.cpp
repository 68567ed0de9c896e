#include "core/progress.h"

#include <unistd.h>

#include <fmt/format.h>

#include <cstdio>

namespace jet {

Progress::Progress(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), tty_(isatty(2)) {
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

Progress::~Progress() {
  if (!finished_) finish();
}

double Progress::rate() const {
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  return s > 0 ? done_ / s : 0.0;
}

void Progress::update(int64_t n, const std::string& extra) {
  done_ += n;
  if (!extra.empty()) extra_ = extra;
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_draw_).count();
  if (since >= (tty_ ? 0.1 : 10.0) || done_ == total_) {
    last_draw_ = now;
    draw(false);
  }
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  draw(true);
}

static std::string hms(double s) {
  if (s < 0 || s > 1e7) return "--:--";
  long t = static_cast<long>(s + 0.5);
  char buf[32];
  if (t >= 3600)
    snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
  else
    snprintf(buf, sizeof buf, "%ld:%02ld", t / 60, t % 60);
  return buf;
}

void Progress::draw(bool final) {
  double r = rate();
  std::string bar;
  if (total_ > 0) {
    const int width = 24;
    int fill = static_cast<int>(width * std::min<double>(1.0, double(done_) / total_));
    bar = "[" + std::string(fill, '#') + std::string(width - fill, ' ') + "] ";
  }
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double eta = (total_ > 0 && r > 0) ? (total_ - done_) / r : -1;
  std::string line = label_ + " " + bar + std::to_string(done_) +
                     (total_ > 0 ? "/" + std::to_string(total_) : "") + " " +
                     (r >= 0.5 || r <= 0 ? fmt::format("{:.1f} {}/s", r, unit_) : fmt::format("{:.1f} s/{}", 1.0 / r, unit_)) + " " +
                     (final ? "in " + hms(elapsed) : "ETA " + hms(eta)) +
                     (extra_.empty() ? "" : " | " + extra_);
  if (tty_)
    fprintf(stderr, "\r\033[K%s%s", line.c_str(), final ? "\n" : "");
  else
    fprintf(stderr, "%s\n", line.c_str());
  fflush(stderr);
}

}  // namespace jet
