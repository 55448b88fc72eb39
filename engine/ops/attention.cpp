// Attention ops: scaled dot-product attention over packed q, k, v, and nn.MultiheadAttention
// composed from it and `linear`. Kernels: kernels/attention.hpp.
#include "engine/dispatch.hpp"
#include "engine/ops.hpp"
#include "kernels/attention.hpp"

namespace ddpm {

Tensor attention(const Tensor& qkv, int64_t heads) {
  check_float("attention", qkv, "qkv");
  DDPM_CHECK(qkv.dim() == 3 && qkv.size(2) % 3 == 0, "attention", "qkv must be [B, L, 3C], got ", qkv.desc());
  const int64_t C = qkv.size(2) / 3;
  DDPM_CHECK(heads > 0 && C % heads == 0, "attention", "C = ", C, " of ", qkv.desc(), " is not divisible by ",
             heads, " heads");
  const kernels::AttnDims dims{qkv.size(0), qkv.size(1), heads, C / heads};
  DDPM_CHECK(qkv.device() == Device::CPU || kernels::cuda_head_dim_supported(dims.head_dim), "attention",
             "the CUDA kernels take head dims 1 to 64, got ", dims.head_dim, " (", qkv.desc(), ", ", heads,
             " heads)");
  Tensor out = Tensor::empty({dims.batch, dims.tokens, C}, qkv.dtype(), qkv.device());
  Tensor lse = Tensor::empty({dims.batch, heads, dims.tokens}, DType::F32, qkv.device());
  with_float_type(qkv.dtype(), [&](auto t) {
    using T = decltype(t);
    DDPM_DISPATCH(qkv.device(), attention_fwd, qkv.data<T>(), out.data<T>(), lse.data<float>(), dims);
  });
  return record(out, "attention", {qkv}, [qs = qkv.detach(), os = out.detach(), lse, dims](const Tensor& g) {
    Tensor delta = empty_like(lse), dqkv = empty_like(qs);
    with_float_type(qs.dtype(), [&](auto t) {
      using T = decltype(t);
      DDPM_DISPATCH(qs.device(), attention_bwd, qs.data<T>(), os.data<T>(), lse.data<float>(), g.data<T>(),
                    delta.data<float>(), dqkv.data<T>(), dims);
    });
    return std::vector<Tensor>{dqkv};
  });
}

Tensor multi_head_attention(const Tensor& x, const Tensor& in_w, const Tensor& in_b, const Tensor& out_w,
                            const Tensor& out_b, int64_t heads, const Tensor& residual) {
  const char* op = "multi_head_attention";
  DDPM_CHECK(x.defined() && x.dim() == 3, op, "x must be [B, L, C], got ", x.desc());
  const int64_t C = x.size(2);
  check_float_same(op, {{&x, "x"}, {&in_w, "in_w"}, {&in_b, "in_b"}, {&out_w, "out_w"}, {&out_b, "out_b"}});
  const bool shapes_ok = in_w.shape() == Shape{3 * C, C} && in_b.shape() == Shape{3 * C} &&
                         out_w.shape() == Shape{C, C} && out_b.shape() == Shape{C};
  DDPM_CHECK(shapes_ok, op, "for x ", x.desc(),
             " the weights must be in_w [3C, C], in_b [3C], out_w [C, C], out_b [C], got ", in_w.desc(), ", ",
             in_b.desc(), ", ", out_w.desc(), ", ", out_b.desc());
  DDPM_CHECK(heads > 0 && C % heads == 0, op, "C of ", x.desc(), " is not divisible by ", heads, " heads");
  check_same_device(op, {&x, &in_w, &in_b, &out_w, &out_b});
  return linear(attention(linear(x, in_w, in_b), heads), out_w, out_b, residual);
}

}  // namespace ddpm
