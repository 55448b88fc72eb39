// 8-bit images for the outside world: PNG grids of samples, image files of a folder data set, and
// a few drawing primitives for the plots of `ddpm schedule`. Pixels are row-major HWC bytes.
// The network's images are floats in [-1, 1]; byte b <-> value b / 127.5 - 1.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/tensor.hpp"

namespace ddpm {

struct Image {
  int64_t width = 0, height = 0, channels = 0;
  std::vector<uint8_t> pixels;  // [height, width, channels]

  Image() = default;
  Image(int64_t w, int64_t h, int64_t c, uint8_t fill = 0);
  uint8_t* at(int64_t x, int64_t y) { return &pixels[size_t((y * width + x) * channels)]; }
};

// [-1, 1] -> 0..255: clamp, then (v + 1) / 2 * 255, rounded.
uint8_t to_byte(float v);
inline float from_byte(uint8_t b) { return float(b) / 127.5f - 1.0f; }

// Images [N, H, W, C] in [-1, 1] (any device) laid out `cols` per row, `pad` pixels of white
// between and around them. N need not fill the last row.
Image image_grid(const Tensor& images, int64_t cols, int64_t pad = 2);

// PNG via stb_image_write; a failure throws ddpm::Error naming the path.
void write_png(const std::string& path, const Image& image);
// PNG or JPEG (anything stb_image reads), converted to `channels` (1 or 3).
Image read_image(const std::string& path, int64_t channels);
// Bilinear resize (stb_image_resize's triangle filter, which also averages when shrinking).
Image resize_image(const Image& image, int64_t width, int64_t height);

// Drawing on RGB images, clipped to the image.
using Rgb = std::array<uint8_t, 3>;
void fill_rect(Image& image, int64_t x, int64_t y, int64_t w, int64_t h, Rgb color);
void draw_line(Image& image, double x0, double y0, double x1, double y1, Rgb color, int64_t thickness = 1);
// Text in stb_easy_font's small bitmap font, `scale` pixels per font unit; returns the width drawn.
int64_t draw_text(Image& image, int64_t x, int64_t y, const std::string& text, Rgb color, int64_t scale = 1);
int64_t text_width(const std::string& text, int64_t scale = 1);

}  // namespace ddpm
