// CIFAR-10's binary version: data_batch_1.bin .. data_batch_5.bin, each a run of 3073-byte records
// (label byte, then 1024 R, 1024 G, 1024 B bytes of a 32x32 image, rows top to bottom).
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "diffusion/data.hpp"
#include "kernels/error.hpp"

namespace ddpm {

Dataset load_cifar10(const std::string& dir) {
  namespace fs = std::filesystem;
  DDPM_CHECK(fs::is_directory(dir), "cifar10", dir, ": not a folder");
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.starts_with("data_batch_") && name.ends_with(".bin")) files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  DDPM_CHECK(!files.empty(), "cifar10", dir, ": no data_batch_*.bin files (the CIFAR-10 binary version)");

  const int64_t side = 32, plane = side * side, record = 1 + 3 * plane;
  Dataset d;
  d.name = "cifar10";
  d.size = side;
  d.channels = 3;
  d.class_names = {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
  for (const std::string& path : files) {
    DDPM_CHECK(std::filesystem::is_regular_file(path), "cifar10", path, ": not a regular file");
    std::ifstream in(path, std::ios::binary);
    DDPM_CHECK(in, "cifar10", path, ": cannot open");
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const int64_t size = int64_t(bytes.size());
    DDPM_CHECK(size > 0 && size % record == 0, "cifar10", path, ": truncated or not a CIFAR-10 batch (", size,
               " bytes is not a whole number of ", record, "-byte records)");
    for (int64_t r = 0; r < size / record; ++r) {
      const uint8_t* rec = &bytes[size_t(r * record)];
      DDPM_CHECK(rec[0] < 10, "cifar10", path, ": label ", int(rec[0]), " of record ", r, " is out of range [0, 10)");
      d.labels.push_back(rec[0]);
      for (int64_t p = 0; p < plane; ++p)  // CHW -> HWC
        for (int64_t c = 0; c < 3; ++c) d.pixels.push_back(rec[1 + c * plane + p]);
    }
  }
  return d;
}

}  // namespace ddpm
