// Small string helpers shared across the layers (C++17 has no std::string::ends_with).
#pragma once
#include <string>
#include <vector>

namespace jet {

inline bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The non-empty items of a comma-separated list ("a,,b" → {a, b}; "" → {}).
inline std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  for (size_t a = 0, b; a <= s.size(); a = b + 1) {
    b = s.find(',', a);
    if (b == std::string::npos) b = s.size();
    if (b > a) out.push_back(s.substr(a, b - a));
  }
  return out;
}

}  // namespace jet
