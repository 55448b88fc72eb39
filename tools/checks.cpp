#include "tools/checks.hpp"

#include <unistd.h>

#include <cerrno>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "kernels/error.hpp"

namespace ddpm::cli {

namespace {

// `help` shows in --help after the type (INT:[2, 100000]); `expected` ends the error message.
CLI::Validator number_check(const std::string& help, const std::function<bool(double)>& ok,
                            const std::string& expected) {
  return CLI::Validator(
      [ok, expected](std::string& text) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(text.c_str(), &end);
        if (text.empty() || end != text.c_str() + text.size()) return "'" + text + "' is not a number";
        if (!std::isfinite(v)) return text + " is not a finite number";
        // The flags land in floats, int64s or uint64s: a value a float cannot hold would quietly
        // become infinity or 0.
        if (std::abs(v) > FLT_MAX || (v != 0 && std::abs(v) < FLT_MIN)) return text + " is out of range";
        return ok(v) ? std::string() : text + " is not " + expected;
      },
      help);
}

}  // namespace

CLI::Validator in_range(double lo, double hi) {
  std::ostringstream bounds;
  bounds << "[" << lo << ", " << hi << "]";
  return number_check(bounds.str(), [lo, hi](double v) { return v >= lo && v <= hi; }, "in " + bounds.str());
}

CLI::Validator seed_check() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        errno = 0;
        (void)std::strtoull(text.c_str(), nullptr, 10);
        const bool digits = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
        if (!digits || errno == ERANGE) return "'" + text + "' is not a seed (an integer in [0, 2^64))";
        return std::string();
      },
      "[0, 2^64)");
}
CLI::Validator positive() { return number_check("POSITIVE", [](double v) { return v > 0; }, "positive"); }
CLI::Validator non_negative() { return number_check("NONNEGATIVE", [](double v) { return v >= 0; }, ">= 0"); }

void check_output_file(const std::string& path, bool renamed_into_place) {
  DDPM_CHECK(!path.empty(), "output", "the output path is empty");
  DDPM_CHECK(!std::filesystem::is_directory(path), "output", path, " is a folder, not a file");
  DDPM_CHECK(!std::filesystem::is_fifo(path) && !std::filesystem::is_socket(path), "output", path,
             " is a pipe or socket: it would wait for a reader");
  // A file renamed into place replaces only a regular file (safetensors, write_text).
  DDPM_CHECK(!renamed_into_place || !std::filesystem::exists(path) || std::filesystem::is_regular_file(path),
             "output", path, " is not a regular file");
  if (std::filesystem::exists(path) && !renamed_into_place) {  // written in place: the file must take writes
    DDPM_CHECK(::access(path.c_str(), W_OK) == 0, "output", path, " is not writable");
    return;
  }
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  const std::string dir = parent.empty() ? "." : parent.string();
  DDPM_CHECK(std::filesystem::is_directory(dir), "output", path, ": folder ", dir, " does not exist");
  DDPM_CHECK(::access(dir.c_str(), W_OK) == 0, "output", path, ": folder ", dir, " is not writable");
}

void write_text(const std::string& path, const std::string& text) {
  DDPM_CHECK(!std::filesystem::exists(path) || std::filesystem::is_regular_file(path), "write", path,
             " is not a regular file");
  const std::string tmp = path + ".tmp";
  std::ofstream f(tmp);
  f << text;
  f.close();
  DDPM_CHECK(!f.fail() && std::rename(tmp.c_str(), path.c_str()) == 0, "write", "cannot write ", path);
}

}  // namespace ddpm::cli
