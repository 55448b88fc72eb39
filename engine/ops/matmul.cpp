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
  Tensor c = Tensor::empty(shape, DType::F32, a.device());
  DDPM_DISPATCH(a.device(), gemm, g, a.data<float>(), b.data<float>(), c.data<float>());
  return c;
}

}  // namespace

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  check_f32("linear", x, "x");
  check_f32("linear", w, "w");
  if (b.defined()) check_f32("linear", b, "b");
  check_same_device("linear", {&x, &w, &b});
  DDPM_CHECK(w.dim() == 2, "linear", "w must be [out, in], got ", w.desc());
  DDPM_CHECK(x.dim() >= 1 && x.size(-1) == w.size(1), "linear", "x ", x.desc(), " must end in w's in dimension, w is ", w.desc());
  DDPM_CHECK(!b.defined() || (b.dim() == 1 && b.size(0) == w.size(0)), "linear", "b must be [", w.size(0),
             "] for w ", w.desc(), ", got ", b.desc());
  const int64_t in = w.size(1), out = w.size(0), rows = x.numel() / in;
  Shape y_shape = x.shape();
  y_shape.back() = out;
  Tensor y = Tensor::empty(y_shape, DType::F32, x.device());
  // y = b (each row), then y += x w^T.
  if (b.defined()) DDPM_DISPATCH(x.device(), bias_fill, y.data<float>(), b.data<float>(), rows, out);
  const Gemm fwd{.m = rows, .n = out, .k = in, .trans_b = true, .accumulate = b.defined()};
  DDPM_DISPATCH(x.device(), gemm, fwd, x.data<float>(), w.data<float>(), y.data<float>());

  std::vector<Tensor> inputs{x, w};
  if (b.defined()) inputs.push_back(b);
  return record(y, "linear", inputs,
                [xs = x.detach(), ws = w.detach(), need_x = x.requires_grad(), need_w = w.requires_grad(),
                 need_b = b.requires_grad(), has_b = b.defined(), rows, in, out](const Tensor& g) {
                  std::vector<Tensor> grads(has_b ? 3 : 2);
                  if (need_x) grads[0] = product({.m = rows, .n = in, .k = out}, g, ws, xs.shape());  // g w
                  if (need_w) grads[1] = product({.m = out, .n = in, .k = rows, .trans_a = true}, g, xs, ws.shape());
                  if (need_b) {
                    grads[2] = Tensor::empty({out}, DType::F32, g.device());
                    DDPM_DISPATCH(g.device(), bias_grad, g.data<float>(), grads[2].data<float>(), rows, out);
                  }
                  return grads;
                });
}

Tensor bmm(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  check_f32("bmm", a, "a");
  check_f32("bmm", b, "b");
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
