// Normalisation ops: group norm with a fused activation, layer norm. Kernels: kernels/norm.hpp.
//
// Both save x and the small per-group (per-row) mean and rstd; the backward recomputes the
// normalised value and the pre-activation from them, so no activation-sized tensor is kept.
#include "engine/dispatch.hpp"
#include "engine/ops.hpp"
#include "kernels/norm.hpp"

namespace ddpm {
namespace {

void check_affine(const char* op, const Tensor& x, const Tensor& w, const Tensor& b) {
  check_f32(op, w, "weight");
  check_f32(op, b, "bias");
  check_same_device(op, {&x, &w, &b});
  const int64_t C = x.size(-1);
  DDPM_CHECK(w.shape() == Shape{C} && b.shape() == Shape{C}, op, "weight ", w.desc(), " and bias ", b.desc(),
             " must both be [", C, "] for input ", x.desc());
}

}  // namespace

Tensor group_norm(const Tensor& x, int64_t groups, const Tensor& w, const Tensor& b, float eps, Act act,
                  const Tensor& shift, const Tensor& residual) {
  const char* op = "group_norm";
  check_float_same(op, {{&x, "input"}, {&shift, "shift"}, {&residual, "residual"}});
  DDPM_CHECK(x.dim() >= 2, op, "input must be [N, ..., C], got ", x.desc());
  check_affine(op, x, w, b);
  check_same_device(op, {&x, &shift, &residual});
  DDPM_CHECK(!residual.defined() || residual.shape() == x.shape(), op, "residual must be ", x.desc(), "'s shape, got ",
             residual.desc());
  const int64_t N = x.size(0), C = x.size(-1), P = x.numel() / (N * C);
  const Shape per_sample{N, C};
  DDPM_CHECK(!shift.defined() || shift.shape() == per_sample, op, "shift must be [", N, ", ", C, "] for input ",
             x.desc(), ", got ", shift.desc());
  DDPM_CHECK(groups >= 1 && C % groups == 0, op, C, " channels cannot be split into ", groups,
             " groups (input ", x.desc(), ")");
  const Device dev = x.device();
  Tensor y = empty_like(x);
  Tensor mean = Tensor::empty({N, groups}, DType::F32, dev), rstd = Tensor::empty({N, groups}, DType::F32, dev);
  Tensor work = scratch_doubles(kernels::group_norm_work(N, P, C, groups), dev);
  with_float_type(x.dtype(), [&](auto t) {
    using T = decltype(t);
    DDPM_DISPATCH(dev, group_norm_fwd, act, x.data<T>(), w.data<float>(), b.data<float>(),
                  shift.defined() ? shift.data<T>() : nullptr, residual.defined() ? residual.data<T>() : nullptr,
                  y.data<T>(), mean.data<float>(), rstd.data<float>(), N, P, C, groups, eps, as_doubles(work));
  });
  std::vector<Tensor> inputs{x, w, b};
  if (shift.defined()) inputs.push_back(shift);
  if (residual.defined()) inputs.push_back(residual);
  const Tensor ss = shift.defined() ? shift.detach() : Tensor(), rs = residual.defined() ? residual.detach() : Tensor();
  return record(y, op, inputs,
                [xs = x.detach(), ws = w.detach(), bs = b.detach(), ss, rs, mean, rstd, groups, act](const Tensor& g) {
                  const int64_t N = xs.size(0), C = xs.size(-1), P = xs.numel() / (N * C);
                  Tensor dx = empty_like(xs), dw = empty_like(ws), db = empty_like(bs);
                  Tensor dshift = ss.defined() ? empty_like(ss) : Tensor();
                  Tensor dres = rs.defined() ? empty_like(rs) : Tensor();
                  Tensor work = scratch_doubles(kernels::group_norm_work(N, P, C, groups), xs.device());
                  with_float_type(xs.dtype(), [&](auto t) {
                    using T = decltype(t);
                    auto or_null = [](const Tensor& u) { return u.defined() ? u.data<T>() : nullptr; };
                    DDPM_DISPATCH(xs.device(), group_norm_bwd, act, xs.data<T>(), ws.data<float>(),
                                  bs.data<float>(), or_null(ss), or_null(rs), mean.data<float>(), rstd.data<float>(),
                                  g.data<T>(), dx.data<T>(), dw.data<float>(), db.data<float>(), or_null(dshift),
                                  or_null(dres), N, P, C, groups, as_doubles(work));
                  });
                  std::vector<Tensor> grads{dx, dw, db};
                  if (ss.defined()) grads.push_back(dshift);
                  if (rs.defined()) grads.push_back(dres);
                  return grads;
                });
}

Tensor layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, float eps) {
  const char* op = "layer_norm";
  check_float(op, x, "input");
  DDPM_CHECK(x.dim() >= 1, op, "input must be [..., C], got ", x.desc());
  check_affine(op, x, w, b);
  const int64_t C = x.size(-1), R = x.numel() / C;
  const Device dev = x.device();
  Tensor y = empty_like(x);
  Tensor mean = Tensor::empty({R}, DType::F32, dev), rstd = Tensor::empty({R}, DType::F32, dev);
  with_float_type(x.dtype(), [&](auto t) {
    using T = decltype(t);
    DDPM_DISPATCH(dev, layer_norm_fwd, x.data<T>(), w.data<float>(), b.data<float>(), y.data<T>(),
                  mean.data<float>(), rstd.data<float>(), R, C, eps);
  });
  return record(y, op, {x, w, b}, [xs = x.detach(), ws = w.detach(), bshape = b.shape(), mean, rstd](const Tensor& g) {
    const int64_t C = xs.size(-1), R = xs.numel() / C;
    Tensor dx = empty_like(xs), dw = empty_like(ws), db = Tensor::empty(bshape, DType::F32, xs.device());
    Tensor work = scratch_doubles(kernels::layer_norm_work(R, C), xs.device());
    with_float_type(xs.dtype(), [&](auto t) {
      using T = decltype(t);
      DDPM_DISPATCH(xs.device(), layer_norm_bwd, xs.data<T>(), ws.data<float>(), mean.data<float>(),
                    rstd.data<float>(), g.data<T>(), dx.data<T>(), dw.data<float>(), db.data<float>(), R, C,
                    as_doubles(work));
    });
    return std::vector<Tensor>{dx, dw, db};
  });
}

}  // namespace ddpm
