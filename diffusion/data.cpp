#include "diffusion/data.hpp"

#include <algorithm>
#include <filesystem>

#include "diffusion/image_io.hpp"
#include "kernels/error.hpp"

namespace ddpm {

Batch Dataset::batch(const std::vector<int64_t>& indices, Device device) const {
  const int64_t n = int64_t(indices.size()), per_image = size * size * channels;
  DDPM_CHECK(n > 0, "batch", "empty batch");
  std::vector<float> x(size_t(n * per_image));
  std::vector<int64_t> y(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t k = indices[size_t(i)];
    DDPM_CHECK(k >= 0 && k < count(), "batch", "image index ", k, " out of range for ", count(), " images");
    const uint8_t* src = &pixels[size_t(k * per_image)];
    for (int64_t j = 0; j < per_image; ++j) x[size_t(i * per_image + j)] = from_byte(src[j]);
    y[size_t(i)] = labels[size_t(k)];
  }
  return {Tensor::from_floats(x, {n, size, size, channels}, device), Tensor::from_ints(y, {n}, device)};
}

namespace {

void resize_all(Dataset& d, int64_t size) {
  if (d.size == size) return;
  const int64_t old_bytes = d.size * d.size * d.channels;
  std::vector<uint8_t> out;
  out.reserve(size_t(d.count() * size * size * d.channels));
  for (int64_t i = 0; i < d.count(); ++i) {
    Image img(d.size, d.size, d.channels);
    std::copy_n(d.pixels.begin() + i * old_bytes, old_bytes, img.pixels.begin());
    Image r = resize_image(img, size, size);
    out.insert(out.end(), r.pixels.begin(), r.pixels.end());
  }
  d.pixels = std::move(out);
  d.size = size;
}

}  // namespace

std::string absolute_data_spec(const std::string& spec) {
  const size_t colon = spec.find(':');
  if (colon == std::string::npos || colon + 1 == spec.size()) return spec;
  return spec.substr(0, colon + 1) + std::filesystem::absolute(spec.substr(colon + 1)).lexically_normal().string();
}

Dataset load_dataset(const std::string& spec, int64_t image_size) {
  DDPM_CHECK(image_size > 0 && image_size % 8 == 0, "data",
             "image size must be a positive multiple of 8 (the U-Net halves it three times), got ", image_size);
  const size_t colon = spec.find(':');
  const std::string kind = spec.substr(0, colon), dir = colon == std::string::npos ? "" : spec.substr(colon + 1);
  Dataset d;
  if (kind == "fashion-mnist") {
    d = load_fashion_mnist(dir.empty() ? kFashionMnistDir : dir);
  } else if (kind == "cifar10" || kind == "folder") {
    DDPM_CHECK(!dir.empty(), "data", "'", spec, "' needs a folder: ", kind, ":DIR");
    d = kind == "cifar10" ? load_cifar10(dir) : load_image_folder(dir, image_size);
  } else {
    detail::fail("data", "unknown data set '", spec, "' (expected fashion-mnist, cifar10:DIR or folder:DIR)");
  }
  resize_all(d, image_size);
  return d;
}

}  // namespace ddpm
