// Errors: every failure a user can cause (bad file, bad flag, shape mismatch) throws jet::Error with a
// one-line reason; the CLI prints it and exits non-zero. Broken invariants use the same macro.
#pragma once
#include <stdexcept>
#include <string>
#include <fmt/format.h>

namespace jet {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] inline void fail(const std::string& msg) { throw Error(msg); }

}  // namespace jet

// JET_CHECK(cond, "fmt {}", args...): throws jet::Error("fmt ...") when cond is false.
#define JET_CHECK(cond, ...)                                   \
  do {                                                         \
    if (!(cond)) ::jet::fail(::fmt::format(__VA_ARGS__));      \
  } while (0)

// JET_FAIL("fmt {}", args...): unconditional.
#define JET_FAIL(...) ::jet::fail(::fmt::format(__VA_ARGS__))
