#include "diffusion/image_io.hpp"

#include <algorithm>
#include <cmath>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "kernels/error.hpp"

// The stb implementations live in this file and nowhere else.
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#include <stb/stb_easy_font.h>
#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>
#include <stb/stb_image_write.h>

namespace ddpm {

Image::Image(int64_t w, int64_t h, int64_t c, uint8_t fill)
    : width(w), height(h), channels(c), pixels(size_t(w * h * c), fill) {}

uint8_t to_byte(float v) {
  float c = std::clamp(v, -1.0f, 1.0f);
  return uint8_t(std::lround((c + 1.0f) * 127.5f));
}

Image image_grid(const Tensor& images, int64_t cols, int64_t pad) {
  DDPM_CHECK(images.dim() == 4 && images.numel() > 0, "image_grid", "expected images [N, H, W, C], got ",
             images.desc());
  DDPM_CHECK(cols > 0 && pad >= 0, "image_grid", "bad layout: cols ", cols, ", pad ", pad);
  const int64_t n = images.size(0), h = images.size(1), w = images.size(2), c = images.size(3);
  const int64_t rows = (n + cols - 1) / cols;
  std::vector<float> px = images.to_floats();
  DDPM_CHECK(all_finite(px), "image_grid",
             "the images hold NaN or infinity (a diverged model?)");
  Image grid(pad + cols * (w + pad), pad + rows * (h + pad), c, 255);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t x0 = pad + (i % cols) * (w + pad), y0 = pad + (i / cols) * (h + pad);
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        for (int64_t ch = 0; ch < c; ++ch)
          grid.at(x0 + x, y0 + y)[ch] = to_byte(px[size_t(((i * h + y) * w + x) * c + ch)]);
  }
  return grid;
}

void write_png(const std::string& path, const Image& image) {
  DDPM_CHECK(!image.pixels.empty(), "write_png", "empty image for ", path);
  // Encoded in memory, then written here: stb's own file writer does not report failed writes
  // (a full disk would leave a truncated PNG behind a success).
  std::string png;
  const auto append = [](void* out, void* data, int size) {
    static_cast<std::string*>(out)->append(static_cast<const char*>(data), size_t(size));
  };
  const int ok = stbi_write_png_to_func(append, &png, int(image.width), int(image.height), int(image.channels),
                                        image.pixels.data(), int(image.width * image.channels));
  DDPM_CHECK(ok, "write_png", "cannot encode ", path);
  std::ofstream f(path, std::ios::binary);
  f.write(png.data(), std::streamsize(png.size()));
  f.close();
  DDPM_CHECK(!f.fail(), "write_png", "cannot write ", path, ": ", std::strerror(errno));
}

Image read_image(const std::string& path, int64_t channels) {
  DDPM_CHECK(channels == 1 || channels == 3, "read_image", "channels must be 1 or 3, got ", channels);
  int w = 0, h = 0, file_channels = 0;
  stbi_uc* data = stbi_load(path.c_str(), &w, &h, &file_channels, int(channels));
  DDPM_CHECK(data, "read_image", path, ": cannot decode image (", stbi_failure_reason(), ")");
  Image image(w, h, channels);
  std::copy(data, data + image.pixels.size(), image.pixels.begin());
  stbi_image_free(data);
  return image;
}

Image resize_image(const Image& image, int64_t width, int64_t height) {
  if (image.width == width && image.height == height) return image;
  Image out(width, height, image.channels);
  int ok = stbir_resize_uint8_generic(image.pixels.data(), int(image.width), int(image.height), 0, out.pixels.data(),
                                      int(width), int(height), 0, int(image.channels), STBIR_ALPHA_CHANNEL_NONE, 0,
                                      STBIR_EDGE_CLAMP, STBIR_FILTER_TRIANGLE, STBIR_COLORSPACE_LINEAR, nullptr);
  DDPM_CHECK(ok, "resize_image", "cannot resize ", image.width, "x", image.height, " to ", width, "x", height);
  return out;
}

void fill_rect(Image& image, int64_t x, int64_t y, int64_t w, int64_t h, Rgb color) {
  const int64_t xa = std::max<int64_t>(x, 0), xb = std::min(x + w, image.width);
  const int64_t ya = std::max<int64_t>(y, 0), yb = std::min(y + h, image.height);
  for (int64_t yy = ya; yy < yb; ++yy)
    for (int64_t xx = xa; xx < xb; ++xx)
      for (int64_t ch = 0; ch < image.channels; ++ch) image.at(xx, yy)[ch] = color[size_t(std::min<int64_t>(ch, 2))];
}

void draw_line(Image& image, double x0, double y0, double x1, double y1, Rgb color, int64_t thickness) {
  // Enough dots along the segment that consecutive ones touch; each dot a thickness-sized square.
  const int64_t n = std::max<int64_t>(1, int64_t(std::ceil(std::max(std::abs(x1 - x0), std::abs(y1 - y0)))));
  for (int64_t i = 0; i <= n; ++i) {
    const double a = double(i) / double(n);
    const int64_t x = std::llround(x0 + a * (x1 - x0)) - thickness / 2;
    const int64_t y = std::llround(y0 + a * (y1 - y0)) - thickness / 2;
    fill_rect(image, x, y, thickness, thickness, color);
  }
}

int64_t draw_text(Image& image, int64_t x, int64_t y, const std::string& text, Rgb color, int64_t scale) {
  // stb_easy_font emits axis-aligned quads (4 vertices of 16 bytes: x, y, z floats, rgba).
  std::vector<char> buffer(text.size() * 64 * 16 + 64);  // at most 11 quads a glyph
  std::string copy = text;
  int quads = stb_easy_font_print(0, 0, copy.data(), nullptr, buffer.data(), int(buffer.size()));
  for (int q = 0; q < quads; ++q) {
    float v0[2], v2[2];  // the quad's first and third corners
    std::memcpy(v0, buffer.data() + q * 64, sizeof v0);
    std::memcpy(v2, buffer.data() + q * 64 + 32, sizeof v2);
    fill_rect(image, x + int64_t(v0[0]) * scale, y + int64_t(v0[1]) * scale, int64_t(v2[0] - v0[0]) * scale,
              int64_t(v2[1] - v0[1]) * scale, color);
  }
  return text_width(text, scale);
}

int64_t text_width(const std::string& text, int64_t scale) {
  std::string copy = text;
  return int64_t(stb_easy_font_width(copy.data())) * scale;
}

}  // namespace ddpm
