// safetensors files (the format of Hugging Face's safetensors library): an 8-byte little-endian
// header length, a JSON header mapping names to {dtype, shape, data_offsets} plus an optional
// "__metadata__" string map, then the raw little-endian tensor bytes. Everything in the header is
// validated (offsets in bounds, sizes matching dtype x shape, tensors tiling the data section with
// no overlap or gap, no duplicate keys); a bad file throws
// ddpm::Error naming the file and the problem. Dtypes F32, BF16, I32, I64; F64 is also read
// (converted to f32). Writes are atomic (PATH.tmp, fsync, then rename).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.hpp"

namespace ddpm {

struct SafeTensors {
  std::vector<std::pair<std::string, Tensor>> tensors;  // CPU tensors, in file order
  std::map<std::string, std::string> metadata;
  const Tensor& at(const std::string& name) const;      // throws naming the file's missing tensor
  bool has(const std::string& name) const;
  std::string path;
};

SafeTensors load_safetensors(const std::string& path);
// The same from a whole file held in memory; `name` labels the errors (the fuzz target's entry).
SafeTensors parse_safetensors(const uint8_t* data, size_t size, const std::string& name);
// Whether `text` can go into a header (JSON text is UTF-8): a metadata value made from a path or
// a folder name may hold other bytes.
bool valid_utf8(const std::string& text);

// Atomic: the file is written in full to PATH.tmp and flushed to disk, then renamed over PATH, so
// PATH holds the old file or the new one, never part of one. Commit::Later stops before the rename:
// files that must change together (a training run's model and state) are all written first, then
// each committed with commit_safetensors, which leaves only the short gap between two renames.
enum class Commit { Now, Later };
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {}, Commit commit = Commit::Now);
// Renames PATH.tmp over PATH; on failure PATH.tmp stays (a complete file a later run may commit).
void commit_safetensors(const std::string& path);

}  // namespace ddpm
