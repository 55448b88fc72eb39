// 2-D convolution, stride 1, same padding, k = 1 or 3. Kernels: kernels/conv.hpp (the bias
// gradient, a column sum, is linear's: bias_grad in ops/matmul.cpp).
#include "engine/dispatch.hpp"
#include "engine/ops.hpp"
#include "kernels/conv.hpp"

namespace ddpm {

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b) {
  check_float_same("conv2d", {{&x, "x"}, {&w, "w"}, {&b, "b"}});
  check_same_device("conv2d", {&x, &w, &b});
  DDPM_CHECK(x.dim() == 4, "conv2d", "x must be NHWC [N, H, W, Cin], got ", x.desc());
  DDPM_CHECK(w.dim() == 4 && w.size(1) == w.size(2) && (w.size(1) == 1 || w.size(1) == 3), "conv2d",
             "w must be OHWI [Cout, k, k, Cin] with k = 1 or 3, got ", w.desc());
  DDPM_CHECK(w.size(3) == x.size(3), "conv2d", "w ", w.desc(), " expects ", w.size(3), " input channels, x is ",
             x.desc());
  DDPM_CHECK(!b.defined() || (b.dim() == 1 && b.size(0) == w.size(0)), "conv2d", "b must be [", w.size(0),
             "] for w ", w.desc(), ", got ", b.desc());
  const kernels::ConvShape s{.n = x.size(0), .h = x.size(1), .w = x.size(2), .cin = x.size(3), .cout = w.size(0),
                             .k = w.size(1)};
  Tensor y = Tensor::empty({s.n, s.h, s.w, s.cout}, x.dtype(), x.device());
  with_float_type(x.dtype(), [&](auto t) {
    using T = decltype(t);
    DDPM_DISPATCH(x.device(), conv2d_fwd, s, x.data<T>(), w.data<T>(), b.defined() ? b.data<T>() : nullptr,
                  y.data<T>());
  });

  std::vector<Tensor> inputs{x, w};
  if (b.defined()) inputs.push_back(b);
  return record(y, "conv2d", inputs,
                [xs = x.detach(), ws = w.detach(), need_x = x.requires_grad(), need_w = w.requires_grad(),
                 need_b = b.requires_grad(), has_b = b.defined(), s](const Tensor& g) {
                  std::vector<Tensor> grads(has_b ? 3 : 2);
                  if (need_x) grads[0] = empty_like(xs);
                  if (need_w) grads[1] = empty_like(ws);
                  with_float_type(g.dtype(), [&](auto t) {
                    using T = decltype(t);
                    if (need_x) DDPM_DISPATCH(g.device(), conv2d_bwd_data, s, g.data<T>(), ws.data<T>(), grads[0].data<T>());
                    if (need_w)
                      DDPM_DISPATCH(g.device(), conv2d_bwd_filter, s, xs.data<T>(), g.data<T>(), grads[1].data<T>());
                  });
                  if (need_b) grads[2] = bias_grad(g, s.pixels(), s.cout);
                  return grads;
                });
}

}  // namespace ddpm
