// CPU reference for kernels/norm.hpp: plain loops over contiguous channels, OpenMP over
// (sample, split) pieces for the sums and over rows for the elementwise passes. The sums follow
// the decomposition of the header (partials per sample, split and channel, then totals in a
// fixed order), so results do not depend on the number of threads.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/norm.hpp"
#include "kernels/widen.hpp"

namespace ddpm::kernels::cpu {
namespace {

// What is added to z w at element (n, p, c): b[c] + shift[n, c] + res[n, p, c], any of them
// absent. b + shift is tabled once per call, and a missing residual reads a row of zeros, so the
// inner loops stay free of branches (and vectorise).
class AddedBias {
 public:
  AddedBias(const float* b, const float* shift, const float* res, int64_t N, int64_t P, int64_t C)
      : res_(res), P_(P), C_(C), per_sample_(size_t(N * C)), zeros_(size_t(C), 0.0f) {
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c)
        per_sample_[size_t(n * C + c)] = (b ? b[c] : 0.0f) + (shift ? shift[n * C + c] : 0.0f);
  }
  const float* sample(int64_t n) const { return per_sample_.data() + n * C_; }
  const float* residual(int64_t n, int64_t p) const { return res_ ? res_ + (n * P_ + p) * C_ : zeros_.data(); }

 private:
  const float* res_;
  int64_t P_, C_;
  std::vector<float> per_sample_, zeros_;
};

// What the partial sums add up at each element: (x, x^2) for the forward statistics, or
// (du, du z) for the backward (norm_grad_at), with statistics per (sample, group), or per
// position for layer norm (N = 1, G = 1, per_row).
struct ColumnSums {
  bool grad;
  Act act;
  const float *x, *dy, *mean, *rstd, *w;  // all but x only for grad
  const AddedBias* bias;                  // only for grad
  int64_t N, P, C, G;
  bool per_row;
};

// part[n][s][c] = {sum a, sum b} over the positions of split s of sample n.
void column_sums(const ColumnSums& a, double* part) {
  with_act(a.act, [&](auto A) {
    const int64_t S = norm_splits(a.N, a.P, a.C), C = a.C, Cg = a.C / a.G;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < a.N; ++n)
      for (int64_t s = 0; s < S; ++s) {
        double* acc = part + (n * S + s) * C * 2;
        std::fill(acc, acc + 2 * C, 0.0);
        for (int64_t p = a.P * s / S; p < a.P * (s + 1) / S; ++p) {
          const float* x = a.x + (n * a.P + p) * C;
          if (!a.grad) {
            for (int64_t c = 0; c < C; ++c) {
              acc[2 * c] += x[c];
              acc[2 * c + 1] += double(x[c]) * x[c];
            }
            continue;
          }
          const float* dy = a.dy + (n * a.P + p) * C;
          const float *bn = a.bias->sample(n), *rr = a.bias->residual(n, p);
          const int64_t stat = n * a.G + (a.per_row ? p : 0);
          for (int64_t g = 0; g < a.G; ++g)
            for (int64_t c = g * Cg; c < (g + 1) * Cg; ++c) {
              NormGradAt t =
                  norm_grad_at(A, x[c], dy[c], a.mean[stat + g], a.rstd[stat + g], a.w[c], bn[c] + rr[c]);
              acc[2 * c] += t.du;
              acc[2 * c + 1] += double(t.du) * t.z;
            }
        }
      }
  });
}

// out[n, g] = {sum a, sum b} over all splits and the group's channels, each channel weighted by
// w[c] when w is given.
void group_totals(const double* part, const float* w, int64_t N, int64_t S, int64_t C, int64_t G, double* out) {
  const int64_t Cg = C / G;
#pragma omp parallel for schedule(static) if (N * G > 64)
  for (int64_t ng = 0; ng < N * G; ++ng) {
    const int64_t n = ng / G, g = ng % G;
    double a = 0, b = 0;
    for (int64_t s = 0; s < S; ++s)
      for (int64_t c = g * Cg; c < (g + 1) * Cg; ++c) {
        const double* q = part + ((n * S + s) * C + c) * 2;
        const double wc = w ? w[c] : 1.0;
        a += wc * q[0];
        b += wc * q[1];
      }
    out[2 * ng] = a;
    out[2 * ng + 1] = b;
  }
}

// db[c] = sum of a, dw[c] = sum of b over the `rows` (sample, split) rows of the partials.
void channel_totals(const double* part, int64_t rows, int64_t C, float* dw, float* db) {
  std::vector<double> a(size_t(C), 0.0), b(size_t(C), 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < C; ++c) {
      a[size_t(c)] += part[(r * C + c) * 2];
      b[size_t(c)] += part[(r * C + c) * 2 + 1];
    }
  for (int64_t c = 0; c < C; ++c) {
    db[c] = float(a[size_t(c)]);
    dw[c] = float(b[size_t(c)]);
  }
}

// dshift[n, c] = sum of a over sample n's S splits.
void shift_totals(const double* part, int64_t N, int64_t S, int64_t C, float* dshift) {
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      double a = 0;
      for (int64_t s = 0; s < S; ++s) a += part[((n * S + s) * C + c) * 2];
      dshift[n * C + c] = float(a);
    }
}

}  // namespace

void group_norm_fwd(Act act, const float* x, const float* w, const float* b, const float* shift, const float* res,
                    float* y, float* mean, float* rstd, int64_t N, int64_t P, int64_t C, int64_t G, float eps,
                    double* work) {
  const int64_t S = norm_splits(N, P, C), Cg = C / G;
  double* sums = work + N * S * C * 2;
  column_sums({false, Act::None, x, nullptr, nullptr, nullptr, nullptr, nullptr, N, P, C, G, false}, work);
  group_totals(work, nullptr, N, S, C, G, sums);
  const double M = double(P * Cg);
  for (int64_t ng = 0; ng < N * G; ++ng) {
    const double m = sums[2 * ng] / M, var = std::max(sums[2 * ng + 1] / M - m * m, 0.0);
    mean[ng] = float(m);
    rstd[ng] = float(1.0 / std::sqrt(var + double(eps)));
  }
  const AddedBias bias(b, shift, res, N, P, C);
  with_act(act, [&](auto A) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t p = 0; p < P; ++p) {
        const float* xr = x + (n * P + p) * C;
        const float *bn = bias.sample(n), *rr = bias.residual(n, p);
        float* yr = y + (n * P + p) * C;
        for (int64_t g = 0; g < G; ++g) {
          const float m = mean[n * G + g], r = rstd[n * G + g];
          for (int64_t c = g * Cg; c < (g + 1) * Cg; ++c) yr[c] = activate(A, (xr[c] - m) * r * w[c] + bn[c] + rr[c]);
        }
      }
  });
}

void group_norm_bwd(Act act, const float* x, const float* w, const float* b, const float* shift, const float* res,
                    const float* mean, const float* rstd, const float* dy, float* dx, float* dw, float* db,
                    float* dshift, float* dres, int64_t N, int64_t P, int64_t C, int64_t G, double* work) {
  const int64_t S = norm_splits(N, P, C), Cg = C / G;
  double* sums = work + N * S * C * 2;
  const AddedBias bias(b, shift, res, N, P, C);
  column_sums({true, act, x, dy, mean, rstd, w, &bias, N, P, C, G, false}, work);
  channel_totals(work, N * S, C, dw, db);
  if (dshift) shift_totals(work, N, S, C, dshift);
  group_totals(work, w, N, S, C, G, sums);  // sum w du and sum w du z per group
  const double M = double(P * Cg);
  with_act(act, [&](auto A) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t p = 0; p < P; ++p) {
        const int64_t row = (n * P + p) * C;
        const float *bn = bias.sample(n), *rr = bias.residual(n, p);
        for (int64_t g = 0; g < G; ++g) {
          const int64_t ng = n * G + g;
          const float m = mean[ng], r = rstd[ng], c1 = float(sums[2 * ng] / M), c2 = float(sums[2 * ng + 1] / M);
          for (int64_t c = g * Cg; c < (g + 1) * Cg; ++c) {
            const NormGradAt t = norm_grad_at(A, x[row + c], dy[row + c], m, r, w[c], bn[c] + rr[c]);
            dx[row + c] = norm_dx(r, w[c], t, c1, c2);
            if (dres) dres[row + c] = t.du;
          }
        }
      }
  });
}

void layer_norm_fwd(const float* x, const float* w, const float* b, float* y, float* mean, float* rstd, int64_t R,
                    int64_t C, float eps) {
#pragma omp parallel for schedule(static) if (R * C > 16384)
  for (int64_t r = 0; r < R; ++r) {
    const float* xr = x + r * C;
    double s = 0, ss = 0;
    for (int64_t c = 0; c < C; ++c) s += xr[c];
    const double m = s / double(C);
    for (int64_t c = 0; c < C; ++c) ss += (xr[c] - m) * (xr[c] - m);
    const float mf = float(m), rf = float(1.0 / std::sqrt(ss / double(C) + double(eps)));
    mean[r] = mf;
    rstd[r] = rf;
    for (int64_t c = 0; c < C; ++c) y[r * C + c] = (xr[c] - mf) * rf * w[c] + b[c];
  }
}

void layer_norm_bwd(const float* x, const float* w, const float* mean, const float* rstd, const float* dy, float* dx,
                    float* dw, float* db, int64_t R, int64_t C, double* work) {
#pragma omp parallel for schedule(static) if (R * C > 16384)
  for (int64_t r = 0; r < R; ++r) {
    const float* xr = x + r * C;
    const float* dyr = dy + r * C;
    double s1 = 0, s2 = 0;
    for (int64_t c = 0; c < C; ++c) {
      NormGradAt t = norm_grad_at(Act::None, xr[c], dyr[c], mean[r], rstd[r], w[c], 0.0f);
      s1 += double(w[c]) * t.du;
      s2 += double(w[c]) * t.du * t.z;
    }
    const float c1 = float(s1 / double(C)), c2 = float(s2 / double(C));
    for (int64_t c = 0; c < C; ++c)
      dx[r * C + c] =
          norm_dx(rstd[r], w[c], norm_grad_at(Act::None, xr[c], dyr[c], mean[r], rstd[r], w[c], 0.0f), c1, c2);
  }
  const AddedBias no_bias(nullptr, nullptr, nullptr, 1, R, C);  // layer norm's dw, db sums see b = 0
  column_sums({true, Act::None, x, dy, mean, rstd, w, &no_bias, 1, R, C, 1, true}, work);
  channel_totals(work, norm_splits(1, R, C), C, dw, db);
}

// bf16: the f32 kernels on widened copies (kernels/widen.hpp).
void group_norm_fwd(Act act, const bf16* x, const float* w, const float* b, const bf16* shift, const bf16* res,
                    bf16* y, float* mean, float* rstd, int64_t N, int64_t P, int64_t C, int64_t G, float eps,
                    double* work) {
  const int64_t n = N * P * C;
  group_norm_fwd(act, Wide(x, n), w, b, Wide(shift, N * C), Wide(res, n), Narrow(y, n), mean, rstd, N, P, C, G, eps,
                 work);
}
void group_norm_bwd(Act act, const bf16* x, const float* w, const float* b, const bf16* shift, const bf16* res,
                    const float* mean, const float* rstd, const bf16* dy, bf16* dx, float* dw, float* db,
                    bf16* dshift, bf16* dres, int64_t N, int64_t P, int64_t C, int64_t G, double* work) {
  const int64_t n = N * P * C;
  group_norm_bwd(act, Wide(x, n), w, b, Wide(shift, N * C), Wide(res, n), mean, rstd, Wide(dy, n), Narrow(dx, n), dw,
                 db, Narrow(dshift, N * C), Narrow(dres, n), N, P, C, G, work);
}
void layer_norm_fwd(const bf16* x, const float* w, const float* b, bf16* y, float* mean, float* rstd, int64_t R,
                    int64_t C, float eps) {
  layer_norm_fwd(Wide(x, R * C), w, b, Narrow(y, R * C), mean, rstd, R, C, eps);
}
void layer_norm_bwd(const bf16* x, const float* w, const float* mean, const float* rstd, const bf16* dy, bf16* dx,
                    float* dw, float* db, int64_t R, int64_t C, double* work) {
  layer_norm_bwd(Wide(x, R * C), w, mean, rstd, Wide(dy, R * C), Narrow(dx, R * C), dw, db, R, C, work);
}

}  // namespace ddpm::kernels::cpu
