// The one exception type of the engine. Every user-reachable check throws it, with a message that
// names the op and the shapes involved, so a bad call never crashes or silently computes garbage.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace ddpm {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

namespace detail {
template <class... Args>
[[noreturn]] void fail(const char* op, const Args&... parts) {
  std::ostringstream s;
  s << op << ": ";
  (s << ... << parts);
  throw Error(s.str());
}
}  // namespace detail

}  // namespace ddpm

// DDPM_CHECK(cond, "op", "message parts", ...) throws ddpm::Error("op: message parts...").
#define DDPM_CHECK(cond, op, ...)                   \
  do {                                              \
    if (!(cond)) ::ddpm::detail::fail(op, __VA_ARGS__); \
  } while (0)
