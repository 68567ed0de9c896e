// Shape formatting for error messages: shape_str(t.sizes()) == "[2, 3]". Any range of integers
// (at::IntArrayRef, std::vector<int64_t>), so pure-C++ code can use it too.
#pragma once
#include <string>

namespace jet {

template <class Range>
std::string shape_str(const Range& s) {
  std::string r = "[";
  bool first = true;
  for (auto d : s) {
    r += (first ? "" : ", ") + std::to_string(d);
    first = false;
  }
  return r + "]";
}

}  // namespace jet
