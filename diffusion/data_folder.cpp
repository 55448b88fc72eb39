// A folder of images, one subfolder per class: DIR/<class>/<image>.png|.jpg|.jpeg.
#include <algorithm>
#include <cctype>
#include <filesystem>

#include "diffusion/data.hpp"
#include "diffusion/image_io.hpp"
#include "kernels/error.hpp"

namespace ddpm {
namespace {

bool is_image_file(const std::filesystem::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg";
}

// The largest centered square of an image.
Image center_square(const Image& img) {
  const int64_t side = std::min(img.width, img.height);
  const int64_t x0 = (img.width - side) / 2, y0 = (img.height - side) / 2;
  Image out(side, side, img.channels);
  for (int64_t y = 0; y < side; ++y)
    std::copy_n(&img.pixels[size_t(((y0 + y) * img.width + x0) * img.channels)], side * img.channels,
                out.at(0, y));
  return out;
}

}  // namespace

Dataset load_image_folder(const std::string& dir, int64_t size) {
  namespace fs = std::filesystem;
  DDPM_CHECK(fs::is_directory(dir), "folder", dir, ": not a folder");
  std::vector<fs::path> classes;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory()) classes.push_back(e.path());
  std::sort(classes.begin(), classes.end());
  DDPM_CHECK(!classes.empty(), "folder", dir, ": no class subfolders (expected DIR/<class>/<images>)");

  Dataset d;
  d.name = "folder";
  d.size = size;
  d.channels = 3;
  for (size_t c = 0; c < classes.size(); ++c) {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(classes[c]))
      if (e.is_regular_file() && is_image_file(e.path())) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    DDPM_CHECK(!files.empty(), "folder", classes[c].string(), ": no PNG or JPEG images");
    d.class_names.push_back(classes[c].filename().string());
    for (const fs::path& f : files) {
      Image img = resize_image(center_square(read_image(f.string(), 3)), size, size);
      d.pixels.insert(d.pixels.end(), img.pixels.begin(), img.pixels.end());
      d.labels.push_back(int64_t(c));
    }
  }
  return d;
}

}  // namespace ddpm
