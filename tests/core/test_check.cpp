#include <gtest/gtest.h>

#include "core/check.h"

TEST(Check, ThrowsFormattedMessage) {
  try {
    JET_CHECK(1 + 1 == 3, "bad value {} in {}", 42, "file.gguf");
    FAIL() << "no throw";
  } catch (const jet::Error& e) {
    EXPECT_STREQ(e.what(), "bad value 42 in file.gguf");
  }
  EXPECT_NO_THROW(JET_CHECK(true, "never"));
}
