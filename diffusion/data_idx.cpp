// IDX files (the MNIST family's format) and the Fashion-MNIST data set built from them.
#include <zlib.h>

#include <algorithm>
#include <filesystem>

#include "diffusion/data.hpp"
#include "kernels/error.hpp"

namespace ddpm {

IdxArray parse_idx(const uint8_t* bytes, size_t size, const std::string& name) {
  DDPM_CHECK(size >= 4, "idx", name, ": truncated (", size, " bytes, no IDX header)");
  DDPM_CHECK(bytes[0] == 0 && bytes[1] == 0, "idx", name, ": not an IDX file (magic starts ", int(bytes[0]), " ",
             int(bytes[1]), ", expected 0 0)");
  DDPM_CHECK(bytes[2] == 0x08, "idx", name, ": element type code ", int(bytes[2]), " is not unsigned bytes (8)");
  const size_t ndim = bytes[3];
  DDPM_CHECK(ndim >= 1 && ndim <= 4, "idx", name, ": ", ndim, " dimensions (expected 1 to 4)");
  const size_t header = 4 + 4 * ndim;
  DDPM_CHECK(size >= header, "idx", name, ": truncated (", size, " bytes, header needs ", header, ")");
  IdxArray a;
  uint64_t total = 1;
  for (size_t d = 0; d < ndim; ++d) {
    const uint8_t* p = bytes + 4 + 4 * d;
    const uint64_t n = uint64_t(p[0]) << 24 | uint64_t(p[1]) << 16 | uint64_t(p[2]) << 8 | uint64_t(p[3]);
    const uint64_t limit = uint64_t(1) << 40;  // 1 TiB: anything larger is a corrupt header
    DDPM_CHECK(n == 0 || total <= limit / n, "idx", name, ": implausible size (dimension ", d, " is ", n, ")");
    total *= n;
    a.dims.push_back(int64_t(n));
  }
  const uint64_t have = size - header;
  DDPM_CHECK(have >= total, "idx", name, ": truncated (", have, " data bytes, the header promises ", total, ")");
  DDPM_CHECK(have == total, "idx", name, ": ", have - total, " bytes beyond the ", total, " the header promises");
  a.data.assign(bytes + header, bytes + size);
  return a;
}

IdxArray read_idx(const std::string& path) {
  DDPM_CHECK(std::filesystem::is_regular_file(path), "idx", path, ": file not found");
  gzFile f = gzopen(path.c_str(), "rb");  // reads plain files too
  DDPM_CHECK(f, "idx", path, ": cannot open");
  std::vector<uint8_t> bytes;
  uint8_t chunk[1 << 16];
  int n = 0;
  while ((n = gzread(f, chunk, sizeof chunk)) > 0) bytes.insert(bytes.end(), chunk, chunk + n);
  int err = Z_OK;
  const char* msg = gzerror(f, &err);
  std::string why = err == Z_OK || err == Z_STREAM_END ? "" : msg;
  gzclose(f);
  DDPM_CHECK(n == 0 && why.empty(), "idx", path, ": corrupt or truncated gzip data (", why, ")");
  return parse_idx(bytes.data(), bytes.size(), path);
}

Dataset load_fashion_mnist(const std::string& dir, const std::string& split) {
  DDPM_CHECK(split == "train" || split == "t10k", "fashion-mnist", "unknown split '", split,
             "' (expected train or t10k)");
  const std::string images_path = dir + "/" + split + "-images-idx3-ubyte.gz";
  const std::string labels_path = dir + "/" + split + "-labels-idx1-ubyte.gz";
  for (const std::string& p : {images_path, labels_path})
    DDPM_CHECK(std::filesystem::is_regular_file(p), "fashion-mnist", p, " not found",
               dir == kFashionMnistDir ? " (the Debian package dataset-fashion-mnist fills this folder: sudo apt "
                                         "install dataset-fashion-mnist)"
                                       : "");
  IdxArray images = read_idx(images_path), labels = read_idx(labels_path);
  DDPM_CHECK(images.dims.size() == 3, "fashion-mnist", images_path, ": expected images [N, rows, cols], got ",
             images.dims.size(), " dimensions");
  DDPM_CHECK(labels.dims.size() == 1, "fashion-mnist", labels_path, ": expected labels [N], got ", labels.dims.size(),
             " dimensions");
  const int64_t n = images.dims[0], rows = images.dims[1], cols = images.dims[2];
  DDPM_CHECK(n > 0 && rows > 0 && cols > 0, "fashion-mnist", images_path, ": no images");
  DDPM_CHECK(labels.dims[0] == n, "fashion-mnist", images_path, " has ", n, " images but ", labels_path, " has ",
             labels.dims[0], " labels");

  Dataset d;
  d.name = "fashion-mnist";
  d.class_names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t l = labels.data[size_t(i)];
    DDPM_CHECK(l < 10, "fashion-mnist", labels_path, ": label ", int(l), " of image ", i, " is out of range [0, 10)");
    d.labels.push_back(l);
  }
  // Pad to a square whose side is a multiple of 8 (28 -> 32), centered, with the black background.
  d.size = (std::max(rows, cols) + 7) / 8 * 8;
  d.channels = 1;
  d.pixels.assign(size_t(n * d.size * d.size), 0);
  const int64_t top = (d.size - rows) / 2, left = (d.size - cols) / 2;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t r = 0; r < rows; ++r)
      std::copy_n(&images.data[size_t((i * rows + r) * cols)], cols,
                  &d.pixels[size_t((i * d.size + top + r) * d.size + left)]);
  return d;
}

}  // namespace ddpm
