// Test helper: the message of the jet::Error that f throws ("no error" if none), checked to be one line.
#pragma once
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "core/check.h"

namespace jet::test {

inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const jet::Error& e) {
    const std::string s = e.what();
    EXPECT_EQ(s.find('\n'), std::string::npos) << "multi-line error: " << s;
    return s;
  }
  return "no error";
}

}  // namespace jet::test
