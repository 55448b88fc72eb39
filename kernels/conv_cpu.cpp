// CPU convolution for kernels/conv.hpp, version 1: im2col + OpenBLAS GEMM (see the header).
#include <algorithm>
#include <vector>

#include "kernels/conv.hpp"
#include "kernels/matmul.hpp"
#include "kernels/widen.hpp"

namespace ddpm::kernels::cpu {
namespace {

// The patch matrix of one chunk of output pixels: at most this many floats (16 MiB). Large enough
// that each GEMM has hundreds of rows (910 at Cin = 512), small enough to stay off the memory
// budget of a training run.
constexpr int64_t kChunkFloats = int64_t(1) << 22;
// im2col and col2im loops touching fewer floats than this stay on one thread.
constexpr int64_t kParallelFloats = int64_t(1) << 16;

int64_t patch_len(const ConvShape& s) { return s.k * s.k * s.cin; }

// Output pixels per chunk; a 1x1 convolution needs no patch buffer, so it takes all in one GEMM.
int64_t chunk_pixels(const ConvShape& s) {
  return s.k == 1 ? s.pixels() : std::max<int64_t>(1, kChunkFloats / patch_len(s));
}

// The patch buffer, kept between calls so a training loop does not page in fresh memory on every
// convolution; it grows to kChunkFloats floats (or one patch, if a patch is larger) and is freed
// at exit.
float* scratch(int64_t floats) {
  static thread_local std::vector<float> buf;
  if (int64_t(buf.size()) < floats) buf.resize(size_t(floats));
  return buf.data();
}

// Row p - p0 of col is the k*k*Cin patch around output pixel p, for p in [p0, p1), taps in
// (ky, kx, ci) order, zeros where the patch leaves the image. The taps of one patch row that lie
// inside the image are adjacent pixels of x, so each patch row is one copy between zero fills.
void im2col(const ConvShape& s, const float* x, int64_t p0, int64_t p1, float* col) {
  const int64_t pad = (s.k - 1) / 2, len = patch_len(s), row = s.k * s.cin;
#pragma omp parallel for schedule(static) if ((p1 - p0) * len > kParallelFloats)
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t n = p / (s.h * s.w), h = p / s.w % s.h, w = p % s.w;
    // Taps kx in [lo, hi) read columns w + kx - pad inside [0, W).
    const int64_t lo = std::max<int64_t>(0, pad - w), hi = std::min(s.k, s.w - w + pad);
    float* dst = col + (p - p0) * len;
    for (int64_t ky = 0; ky < s.k; ++ky, dst += row) {
      const int64_t hy = h + ky - pad;
      if (hy < 0 || hy >= s.h) {
        std::fill_n(dst, row, 0.0f);
        continue;
      }
      std::fill_n(dst, lo * s.cin, 0.0f);
      std::copy_n(x + ((n * s.h + hy) * s.w + w + lo - pad) * s.cin, (hi - lo) * s.cin, dst + lo * s.cin);
      std::fill_n(dst + hi * s.cin, (s.k - hi) * s.cin, 0.0f);
    }
  }
}

// The adjoint of im2col for the chunk [p0, p1): dx[q] += every patch entry of dcol that was read
// from input pixel q. Written as a gather over q (each thread owns its dx rows, no races); the
// chunk's patches reach input pixels within pad rows and pad columns of it.
void col2im(const ConvShape& s, const float* dcol, int64_t p0, int64_t p1, float* dx) {
  const int64_t pad = (s.k - 1) / 2, len = patch_len(s), halo = pad * (s.w + 1);
  const int64_t q0 = std::max<int64_t>(0, p0 - halo), q1 = std::min(s.pixels(), p1 + halo);
#pragma omp parallel for schedule(static) if ((q1 - q0) * len > kParallelFloats)
  for (int64_t q = q0; q < q1; ++q) {
    const int64_t n = q / (s.h * s.w), h = q / s.w % s.h, w = q % s.w;
    float* dst = dx + q * s.cin;
    for (int64_t ky = 0; ky < s.k; ++ky) {
      const int64_t ho = h - ky + pad;  // the output row whose patch tap ky lies on input row h
      if (ho < 0 || ho >= s.h) continue;
      for (int64_t kx = 0; kx < s.k; ++kx) {
        const int64_t wo = w - kx + pad, p = (n * s.h + ho) * s.w + wo;
        if (wo < 0 || wo >= s.w || p < p0 || p >= p1) continue;
        const float* src = dcol + (p - p0) * len + (ky * s.k + kx) * s.cin;
        for (int64_t c = 0; c < s.cin; ++c) dst[c] += src[c];
      }
    }
  }
}

// The patch matrix of output pixels [p0, p1): x itself for a 1x1 convolution, else im2col.
const float* patches(const ConvShape& s, const float* x, int64_t p0, int64_t p1) {
  if (s.k == 1) return x + p0 * s.cin;
  float* col = scratch((p1 - p0) * patch_len(s));
  im2col(s, x, p0, p1, col);
  return col;
}

}  // namespace

void conv2d_fwd(const ConvShape& s, const float* x, const float* w, const float* b, float* y) {
  if (b) bias_fill(y, b, s.pixels(), s.cout);
  for (int64_t p0 = 0, step = chunk_pixels(s); p0 < s.pixels(); p0 += step) {
    const int64_t p1 = std::min(s.pixels(), p0 + step);
    // y[p0:p1] (+)= patches [p1-p0, k*k*Cin] x w^T
    gemm({.m = p1 - p0, .n = s.cout, .k = patch_len(s), .trans_b = true, .accumulate = b != nullptr},
         patches(s, x, p0, p1), w, y + p0 * s.cout);
  }
}

void conv2d_bwd_data(const ConvShape& s, const float* dy, const float* w, float* dx) {
  // d patches = dy [P, Cout] x w [Cout, k*k*Cin]; for 1x1 that is dx itself.
  if (s.k == 1) {
    gemm({.m = s.pixels(), .n = s.cin, .k = s.cout}, dy, w, dx);
    return;
  }
  std::fill_n(dx, s.pixels() * s.cin, 0.0f);
  for (int64_t p0 = 0, step = chunk_pixels(s); p0 < s.pixels(); p0 += step) {
    const int64_t p1 = std::min(s.pixels(), p0 + step);
    float* dcol = scratch((p1 - p0) * patch_len(s));
    gemm({.m = p1 - p0, .n = patch_len(s), .k = s.cout}, dy + p0 * s.cout, w, dcol);
    col2im(s, dcol, p0, p1, dx);
  }
}

void conv2d_bwd_filter(const ConvShape& s, const float* x, const float* dy, float* dw) {
  for (int64_t p0 = 0, step = chunk_pixels(s); p0 < s.pixels(); p0 += step) {
    const int64_t p1 = std::min(s.pixels(), p0 + step);
    // dw (+)= dy[p0:p1]^T [Cout, p1-p0] x patches [p1-p0, k*k*Cin]
    gemm({.m = s.cout, .n = patch_len(s), .k = p1 - p0, .trans_a = true, .accumulate = p0 > 0},
         dy + p0 * s.cout, patches(s, x, p0, p1), dw);
  }
}

// bf16: the f32 kernels on widened copies (kernels/widen.hpp).
void conv2d_fwd(const ConvShape& s, const bf16* x, const bf16* w, const bf16* b, bf16* y) {
  conv2d_fwd(s, Wide(x, s.pixels() * s.cin), Wide(w, s.cout * patch_len(s)), Wide(b, s.cout),
             Narrow(y, s.pixels() * s.cout));
}
void conv2d_bwd_data(const ConvShape& s, const bf16* dy, const bf16* w, bf16* dx) {
  conv2d_bwd_data(s, Wide(dy, s.pixels() * s.cout), Wide(w, s.cout * patch_len(s)), Narrow(dx, s.pixels() * s.cin));
}
void conv2d_bwd_filter(const ConvShape& s, const bf16* x, const bf16* dy, bf16* dw) {
  conv2d_bwd_filter(s, Wide(x, s.pixels() * s.cin), Wide(dy, s.pixels() * s.cout), Narrow(dw, s.cout * patch_len(s)));
}

}  // namespace ddpm::kernels::cpu
