// safetensors files (the format of Hugging Face's safetensors library): an 8-byte little-endian
// header length, a JSON header mapping names to {dtype, shape, data_offsets} plus an optional
// "__metadata__" string map, then the raw little-endian tensor bytes. Everything in the header is
// validated (offsets in bounds, sizes matching dtype x shape, no overlaps); a bad file throws
// ddpm::Error naming the file and the problem. Writes are atomic (temporary file, then rename).
#pragma once
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
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace ddpm
