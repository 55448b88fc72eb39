// CPU reference for kernels/resample.hpp: OpenMP over output rows, contiguous channel loops
// inside, per-axis taps computed once per row or column.
#include <cstring>
#include <vector>

#include "kernels/resample.hpp"
#include "kernels/widen.hpp"

namespace ddpm::kernels::cpu {

namespace {
template <class T>
void copy_rows(const T* src, int64_t src_C, int64_t src_off, T* dst, int64_t dst_C, int64_t dst_off, int64_t rows,
               int64_t width) {
#pragma omp parallel for schedule(static) if (rows * width > 65536)
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(dst + r * dst_C + dst_off, src + r * src_C + src_off, size_t(width) * sizeof(T));
}
}  // namespace

void copy_channels(const float* src, int64_t src_C, int64_t src_off, float* dst, int64_t dst_C, int64_t dst_off,
                   int64_t rows, int64_t width) {
  copy_rows(src, src_C, src_off, dst, dst_C, dst_off, rows, width);
}

namespace {

// For each output element of the 2x2 pool, calls f(window values, output index, input offsets).
template <class F> void for_each_window(int64_t N, int64_t H, int64_t W, int64_t C, F f) {
  const int64_t Ho = H / 2, Wo = W / 2;
#pragma omp parallel for collapse(2) schedule(static) if (N * H * W * C > 65536)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < Ho; ++i)
      for (int64_t j = 0; j < Wo; ++j) {
        const int64_t top = ((n * H + 2 * i) * W + 2 * j) * C;
        const int64_t at[4] = {top, top + C, top + W * C, top + W * C + C};
        const int64_t out = ((n * Ho + i) * Wo + j) * C;
        for (int64_t c = 0; c < C; ++c) f(at, c, out + c);
      }
}

}  // namespace

void max_pool2x2_fwd(const float* x, float* y, int64_t N, int64_t H, int64_t W, int64_t C) {
  for_each_window(N, H, W, C, [&](const int64_t* at, int64_t c, int64_t o) {
    const float v[4] = {x[at[0] + c], x[at[1] + c], x[at[2] + c], x[at[3] + c]};
    y[o] = v[pool_argmax(v)];
  });
}

void max_pool2x2_bwd(const float* x, const float* dy, float* dx, int64_t N, int64_t H, int64_t W, int64_t C) {
  for_each_window(N, H, W, C, [&](const int64_t* at, int64_t c, int64_t o) {
    const float v[4] = {x[at[0] + c], x[at[1] + c], x[at[2] + c], x[at[3] + c]};
    const int best = pool_argmax(v);
    for (int k = 0; k < 4; ++k) dx[at[k] + c] = k == best ? dy[o] : 0.0f;
  });
}

namespace {
std::vector<UpsampleTaps> taps_of(int64_t in) {
  std::vector<UpsampleTaps> t;
  for (int64_t i = 0; i < 2 * in; ++i) t.push_back(upsample_taps(i, in));
  return t;
}
}  // namespace

void upsample2x_fwd(const float* x, float* y, int64_t N, int64_t H, int64_t W, int64_t C) {
  const std::vector<UpsampleTaps> ty = taps_of(H), tx = taps_of(W);
#pragma omp parallel for collapse(2) schedule(static) if (N * H * W * C > 16384)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < 2 * H; ++i) {
      const UpsampleTaps a = ty[size_t(i)];
      const float* r0 = x + (n * H + a.lo) * W * C;
      const float* r1 = x + (n * H + a.hi) * W * C;
      float* out = y + (n * 2 * H + i) * 2 * W * C;
      for (int64_t j = 0; j < 2 * W; ++j) {
        const UpsampleTaps b = tx[size_t(j)];
        for (int64_t c = 0; c < C; ++c) {
          const float top = (1 - b.frac) * r0[b.lo * C + c] + b.frac * r0[b.hi * C + c];
          const float bottom = (1 - b.frac) * r1[b.lo * C + c] + b.frac * r1[b.hi * C + c];
          out[j * C + c] = (1 - a.frac) * top + a.frac * bottom;
        }
      }
    }
}

// A scatter: each output pixel adds its four weighted contributions. Parallel over samples only
// (two output rows can feed the same input row); the CUDA version gathers instead.
void upsample2x_bwd(const float* dy, float* dx, int64_t N, int64_t H, int64_t W, int64_t C) {
  const std::vector<UpsampleTaps> ty = taps_of(H), tx = taps_of(W);
#pragma omp parallel for schedule(static) if (N * H * W * C > 16384)
  for (int64_t n = 0; n < N; ++n) {
    std::fill(dx + n * H * W * C, dx + (n + 1) * H * W * C, 0.0f);
    for (int64_t i = 0; i < 2 * H; ++i) {
      const UpsampleTaps a = ty[size_t(i)];
      float* r0 = dx + (n * H + a.lo) * W * C;
      float* r1 = dx + (n * H + a.hi) * W * C;
      const float* g = dy + (n * 2 * H + i) * 2 * W * C;
      for (int64_t j = 0; j < 2 * W; ++j) {
        const UpsampleTaps b = tx[size_t(j)];
        for (int64_t c = 0; c < C; ++c) {
          const float v = g[j * C + c];
          r0[b.lo * C + c] += (1 - a.frac) * (1 - b.frac) * v;
          r0[b.hi * C + c] += (1 - a.frac) * b.frac * v;
          r1[b.lo * C + c] += a.frac * (1 - b.frac) * v;
          r1[b.hi * C + c] += a.frac * b.frac * v;
        }
      }
    }
  }
}

void embedding_fwd(const int64_t* ids, const float* table, float* out, int64_t B, int64_t D) {
  for (int64_t i = 0; i < B; ++i) std::memcpy(out + i * D, table + ids[i] * D, size_t(D) * sizeof(float));
}

void embedding_bwd(const int64_t* ids, const float* dout, float* dtable, int64_t B, int64_t num, int64_t D) {
  std::fill(dtable, dtable + num * D, 0.0f);
  for (int64_t i = 0; i < B; ++i)
    for (int64_t d = 0; d < D; ++d) dtable[ids[i] * D + d] += dout[i * D + d];
}

// bf16: a copy moves the bits; the rest are the f32 kernels on widened copies (kernels/widen.hpp).
void copy_channels(const bf16* src, int64_t src_C, int64_t src_off, bf16* dst, int64_t dst_C, int64_t dst_off,
                   int64_t rows, int64_t width) {
  copy_rows(src, src_C, src_off, dst, dst_C, dst_off, rows, width);
}
void max_pool2x2_fwd(const bf16* x, bf16* y, int64_t N, int64_t H, int64_t W, int64_t C) {
  max_pool2x2_fwd(Wide(x, N * H * W * C), Narrow(y, N * (H / 2) * (W / 2) * C), N, H, W, C);
}
void max_pool2x2_bwd(const bf16* x, const bf16* dy, bf16* dx, int64_t N, int64_t H, int64_t W, int64_t C) {
  max_pool2x2_bwd(Wide(x, N * H * W * C), Wide(dy, N * (H / 2) * (W / 2) * C), Narrow(dx, N * H * W * C), N, H, W, C);
}
void upsample2x_fwd(const bf16* x, bf16* y, int64_t N, int64_t H, int64_t W, int64_t C) {
  upsample2x_fwd(Wide(x, N * H * W * C), Narrow(y, N * 4 * H * W * C), N, H, W, C);
}
void upsample2x_bwd(const bf16* dy, bf16* dx, int64_t N, int64_t H, int64_t W, int64_t C) {
  upsample2x_bwd(Wide(dy, N * 4 * H * W * C), Narrow(dx, N * H * W * C), N, H, W, C);
}

}  // namespace ddpm::kernels::cpu
