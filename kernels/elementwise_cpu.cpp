// CPU reference for kernels/elementwise.hpp: plain loops, OpenMP over elements.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/elementwise.hpp"
#include "kernels/widen.hpp"

namespace ddpm::kernels {

namespace cpu {

void fill(float* x, int64_t n, float value) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) x[i] = value;
}

void accumulate(float* out, const float* src, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) out[i] += src[i];
}

void scale(float* x, int64_t n, float s) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

void act_fwd(Act act, const float* x, float* y, int64_t n) {
  with_act(act, [&](auto A) {
#pragma omp parallel for schedule(static) if (n > 16384)
    for (int64_t i = 0; i < n; ++i) y[i] = activate(A, x[i]);
  });
}

void act_bwd(Act act, const float* x, const float* dy, float* dx, int64_t n) {
  with_act(act, [&](auto A) {
#pragma omp parallel for schedule(static) if (n > 16384)
    for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * activate_grad(A, x[i]);
  });
}

void add_act_fwd(Act act, const float* a, const float* b, float* y, int64_t n) {
  with_act(act, [&](auto A) {
#pragma omp parallel for schedule(static) if (n > 16384)
    for (int64_t i = 0; i < n; ++i) y[i] = activate(A, a[i] + b[i]);
  });
}

void add_act_bwd(Act act, const float* a, const float* b, const float* dy, float* dsum, int64_t n) {
  with_act(act, [&](auto A) {
#pragma omp parallel for schedule(static) if (n > 16384)
    for (int64_t i = 0; i < n; ++i) dsum[i] = dy[i] * activate_grad(A, a[i] + b[i]);
  });
}

void binary(BinOp op, const float* a, const float* b, float* out, const Broadcast& bc) {
  const int64_t n0 = bc.shape[0], n1 = bc.shape[1], n2 = bc.shape[2], n3 = bc.shape[3];
#pragma omp parallel for collapse(2) schedule(static) if (bc.numel() > 65536)
  for (int64_t i0 = 0; i0 < n0; ++i0)
    for (int64_t i1 = 0; i1 < n1; ++i1)
      for (int64_t i2 = 0; i2 < n2; ++i2) {
        int64_t base = ((i0 * n1 + i1) * n2 + i2) * n3;
        const float* bp = b + i0 * bc.b_stride[0] + i1 * bc.b_stride[1] + i2 * bc.b_stride[2];
        for (int64_t i3 = 0; i3 < n3; ++i3) {
          float x = a[base + i3], y = bp[i3 * bc.b_stride[3]];
          out[base + i3] = op == BinOp::Add ? x + y : op == BinOp::Sub ? x - y : x * y;
        }
      }
}

void reduce_to_b(const float* g, float* gb, const Broadcast& bc) {
  // Each b element is a sum over the positions that map to it; serial in that sum, parallel over
  // nothing, because sizes here are small (embeddings and biases). Accumulated in double.
  int64_t nb = 1;
  for (int d = 0; d < 4; ++d)
    if (bc.b_stride[d]) nb = std::max(nb, bc.b_stride[d] * bc.shape[d]);
  std::vector<double> acc(size_t(nb), 0.0);
  const int64_t n0 = bc.shape[0], n1 = bc.shape[1], n2 = bc.shape[2], n3 = bc.shape[3];
  for (int64_t i0 = 0; i0 < n0; ++i0)
    for (int64_t i1 = 0; i1 < n1; ++i1)
      for (int64_t i2 = 0; i2 < n2; ++i2) {
        int64_t base = ((i0 * n1 + i1) * n2 + i2) * n3;
        int64_t bbase = i0 * bc.b_stride[0] + i1 * bc.b_stride[1] + i2 * bc.b_stride[2];
        for (int64_t i3 = 0; i3 < n3; ++i3) acc[size_t(bbase + i3 * bc.b_stride[3])] += g[base + i3];
      }
  for (int64_t i = 0; i < nb; ++i) gb[i] = float(acc[size_t(i)]);
}

void f32_to_bf16(const float* x, bf16* y, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) y[i] = float_to_bf16(x[i]);
}

void bf16_to_f32(const bf16* x, float* y, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_float(x[i]);
}

// bf16: the f32 kernels on widened copies (kernels/widen.hpp).
void accumulate(bf16* out, const bf16* src, int64_t n) { accumulate(Narrow(out, n, true), Wide(src, n), n); }
void scale(bf16* x, int64_t n, float s) { scale(Narrow(x, n, true), n, s); }
void act_fwd(Act act, const bf16* x, bf16* y, int64_t n) { act_fwd(act, Wide(x, n), Narrow(y, n), n); }
void act_bwd(Act act, const bf16* x, const bf16* dy, bf16* dx, int64_t n) {
  act_bwd(act, Wide(x, n), Wide(dy, n), Narrow(dx, n), n);
}
void add_act_fwd(Act act, const bf16* a, const bf16* b, bf16* y, int64_t n) {
  add_act_fwd(act, Wide(a, n), Wide(b, n), Narrow(y, n), n);
}
void add_act_bwd(Act act, const bf16* a, const bf16* b, const bf16* dy, bf16* dsum, int64_t n) {
  add_act_bwd(act, Wide(a, n), Wide(b, n), Wide(dy, n), Narrow(dsum, n), n);
}
void binary(BinOp op, const bf16* a, const bf16* b, bf16* out, const Broadcast& bc) {
  binary(op, Wide(a, bc.numel()), Wide(b, bc.b_numel()), Narrow(out, bc.numel()), bc);
}
void reduce_to_b(const bf16* g, bf16* gb, const Broadcast& bc) {
  reduce_to_b(Wide(g, bc.numel()), Narrow(gb, bc.b_numel()), bc);
}

}  // namespace cpu
}  // namespace ddpm::kernels
