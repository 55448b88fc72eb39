// Checks shared by the `ddpm` command line and the benchmark programs: number flags that must be
// finite and in bounds, output paths tested before long work, and text files replaced whole.
#pragma once
#include <CLI/CLI.hpp>
#include <map>
#include <string>

namespace ddpm::cli {

// Numeric checks for flags: the value must be a finite number (CLI11's own range checks let NaN
// through) within the bounds, and the message is short: "--lr: nan is not a finite number".
CLI::Validator in_range(double lo, double hi);
CLI::Validator positive();      // > 0
CLI::Validator non_negative();  // >= 0
CLI::Validator seed_check();  // an unsigned 64-bit integer, checked exactly (not through a double)

// The values of a flag that picks an enum by name: checked and shown as names ("bf16|f32"), where
// CLI::CheckedTransformer also takes the enum's numbers and shows its map in --help.
template <class T> CLI::Validator named(const std::map<std::string, T>& names) {
  std::string list;
  for (const auto& [name, value] : names) list += (list.empty() ? "" : "|") + name;
  return CLI::Validator(
      [names, list](std::string& text) -> std::string {
        const auto it = names.find(text);
        if (it == names.end()) return "'" + text + "' is not one of " + list;
        text = std::to_string(static_cast<long long>(it->second));  // what CLI11 converts to the enum
        return std::string();
      },
      list);
}

// Fails (ddpm::Error) unless `path` can be written: an existing file that takes writes, or a new
// one in a folder that exists and takes writes (always the folder when the file is renamed into
// place, as safetensors files are). Checked before long work, so that a typo in --out does not
// cost the run.
void check_output_file(const std::string& path, bool renamed_into_place = false);

// Writes `text` beside PATH, then renames it over PATH: a kill while writing leaves the old file
// whole. Fails (ddpm::Error) when the file cannot be written.
void write_text(const std::string& path, const std::string& text);

}  // namespace ddpm::cli
