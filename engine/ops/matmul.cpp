// Matrix products: linear and bmm. Kernels: kernels/matmul.hpp.
//
// Backward rules, for C = op(A) op(B): d op(A) = dC op(B)^T and d op(B) = op(A)^T dC; where an
// operand is stored transposed, its gradient is the transpose of that, which is again one GEMM
// with the transposes moved onto the factors.
#include "engine/dispatch.hpp"
#include "engine/ops.hpp"
#include "kernels/matmul.hpp"

namespace ddpm {
namespace {

using kernels::Gemm;

// A fresh tensor of `shape` holding op(a) op(b) as described by g.
Tensor product(const Gemm& g, const Tensor& a, const Tensor& b, const Shape& shape) {
  Tensor c = Tensor::empty(shape, a.dtype(), a.device());
  with_float_type(a.dtype(), [&](auto t) {
    using T = decltype(t);
    DDPM_DISPATCH(a.device(), gemm, g, a.data<T>(), b.data<T>(), c.data<T>());
  });
  return c;
}

}  // namespace

Tensor bias_grad(const Tensor& g, int64_t rows, int64_t cols) {
  Tensor db = Tensor::empty({cols}, g.dtype(), g.device());
  Tensor work = scratch_doubles(kernels::bias_grad_work(rows, cols), g.device());
  with_float_type(g.dtype(), [&](auto t) {
    using T = decltype(t);
    DDPM_DISPATCH(g.device(), bias_grad, g.data<T>(), db.data<T>(), rows, cols, as_doubles(work));
  });
  return db;
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& residual) {
  check_float_same("linear", {{&x, "x"}, {&w, "w"}, {&b, "b"}, {&residual, "residual"}});
  check_same_device("linear", {&x, &w, &b, &residual});
  DDPM_CHECK(w.dim() == 2, "linear", "w must be [out, in], got ", w.desc());
  DDPM_CHECK(x.dim() >= 1 && x.size(-1) == w.size(1), "linear", "x ", x.desc(), " must end in w's in dimension, w is ", w.desc());
  DDPM_CHECK(!b.defined() || (b.dim() == 1 && b.size(0) == w.size(0)), "linear", "b must be [", w.size(0),
             "] for w ", w.desc(), ", got ", b.desc());
  const int64_t in = w.size(1), out = w.size(0), rows = x.numel() / in;
  Shape y_shape = x.shape();
  y_shape.back() = out;
  DDPM_CHECK(!residual.defined() || residual.shape() == y_shape, "linear", "residual must be ", shape_str(y_shape),
             " like the output, got ", residual.desc());
  DDPM_CHECK(b.defined() || !residual.defined(), "linear", "a residual needs a bias (they share the epilogue)");
  Tensor y = Tensor::empty(y_shape, x.dtype(), x.device());
  // y = x w^T (+ b + residual, in the product's epilogue).
  with_float_type(x.dtype(), [&](auto t) {
    using T = decltype(t);
    const Gemm fwd{.m = rows, .n = out, .k = in, .trans_b = true};
    if (b.defined())
      DDPM_DISPATCH(x.device(), gemm_bias, fwd, x.data<T>(), w.data<T>(), b.data<T>(),
                    residual.defined() ? residual.data<T>() : nullptr, y.data<T>());
    else DDPM_DISPATCH(x.device(), gemm, fwd, x.data<T>(), w.data<T>(), y.data<T>());
  });

  std::vector<Tensor> inputs{x, w};
  if (b.defined()) inputs.push_back(b);
  if (residual.defined()) inputs.push_back(residual);
  return record(y, "linear", inputs,
                [xs = x.detach(), ws = w.detach(), need_x = x.requires_grad(), need_w = w.requires_grad(),
                 need_b = b.requires_grad(), n_inputs = inputs.size(), has_r = residual.defined(), rows, in,
                 out](const Tensor& g) {
                  std::vector<Tensor> grads(n_inputs);
                  if (need_x) grads[0] = product({.m = rows, .n = in, .k = out}, g, ws, xs.shape());  // g w
                  if (need_w) grads[1] = product({.m = out, .n = in, .k = rows, .trans_a = true}, g, xs, ws.shape());
                  if (need_b) grads[2] = bias_grad(g, rows, out);
                  if (has_r) grads.back() = g;  // the residual's: the autograd never writes into it
                  return grads;
                });
}

Tensor bmm(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  check_float_same("bmm", {{&a, "a"}, {&b, "b"}});
  check_same_device("bmm", {&a, &b});
  DDPM_CHECK(a.dim() == 3 && b.dim() == 3 && a.size(0) == b.size(0), "bmm", "needs [B, M, K] and [B, K, N], got ",
             a.desc(), " and ", b.desc());
  const int64_t B = a.size(0), M = a.size(trans_a ? 2 : 1), K = a.size(trans_a ? 1 : 2);
  const int64_t N = b.size(trans_b ? 1 : 2);
  DDPM_CHECK(b.size(trans_b ? 2 : 1) == K, "bmm", "inner dimensions differ: ", a.desc(), (trans_a ? " (transposed)" : ""),
             " times ", b.desc(), (trans_b ? " (transposed)" : ""));
  Tensor c = product({.batch = B, .m = M, .n = N, .k = K, .trans_a = trans_a, .trans_b = trans_b}, a, b, {B, M, N});
  return record(c, "bmm", {a, b},
                [as = a.detach(), bs = b.detach(), need_a = a.requires_grad(), need_b = b.requires_grad(), trans_a,
                 trans_b, B, M, N, K](const Tensor& g) {
                  Tensor da, db;
                  if (need_a)  // d op(a) = g op(b)^T [M, K]; stored [K, M] it is op(b) g^T
                    da = trans_a ? product({.batch = B, .m = K, .n = M, .k = N, .trans_a = trans_b, .trans_b = true},
                                           bs, g, as.shape())
                                 : product({.batch = B, .m = M, .n = K, .k = N, .trans_b = !trans_b}, g, bs, as.shape());
                  if (need_b)  // d op(b) = op(a)^T g [K, N]; stored [N, K] it is g^T op(a)
                    db = trans_b ? product({.batch = B, .m = N, .n = K, .k = M, .trans_a = true, .trans_b = trans_a},
                                           g, as, bs.shape())
                                 : product({.batch = B, .m = K, .n = N, .k = M, .trans_a = !trans_a}, as, g, bs.shape());
                  return std::vector<Tensor>{da, db};
                });
}

}  // namespace ddpm
