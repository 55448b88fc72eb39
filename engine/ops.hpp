// The engine's differentiable ops: one public function each. Every op checks its inputs (shape,
// dtype, device) and throws ddpm::Error naming the op and the shapes; records an autograd node
// when an input requires grad; and dispatches to the CPU or CUDA kernel of kernels/<family>.hpp.
// The op's forward, its backward rule and its dispatch live together in engine/ops/<family>.cpp.
//
// Dtypes: data is f32 or bf16 (the mixed-precision path: bf16 storage, f32 arithmetic inside
// every kernel, one rounding per output); the float inputs of one op share a dtype, except the
// norms' affine parameters, which stay f32 (as do embedding tables and the losses' inputs).
// Gradients have their tensor's dtype. cast() converts, differentiably.
//
// Layout: activations are NHWC [N, H, W, C]; conv weights OHWI [out, kh, kw, in]; linear weights
// [out, in] (see engine/tensor.hpp).
#pragma once
#include <cstdint>
#include <memory>

#include "engine/tensor.hpp"
#include "kernels/elementwise.hpp"

namespace ddpm {

using kernels::Act;

// ---- elementwise (ops/elementwise.cpp) ----
Tensor gelu(const Tensor& x);  // exact erf form
Tensor silu(const Tensor& x);
// a op b, where b's shape broadcasts to a's (numpy rules, b never larger than a, at most 4 dims):
// e.g. the per-channel embedding add [N, H, W, C] + [N, 1, 1, C]. The result has a's shape.
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor add_gelu(const Tensor& a, const Tensor& b);  // gelu(a + b), same shapes: the residual of a ResNet block
// x as f32 or bf16 (round to nearest even); the gradient is cast back. x itself if it has dtype.
Tensor cast(const Tensor& x, DType dtype);

// Weight copies for mixed precision. While a CastCache is in use on this thread (CastCache::Use),
// cast() of a parameter (a leaf tensor that requires grad) to another dtype returns the cache's copy of
// it, made on first use, instead of converting it again: a bf16 model otherwise converts every
// weight on every forward and every weight gradient back on every backward (~100 small kernels
// each way per U-Net step; in a recorded CUDA graph, too). Activations are converted as usual.
// - A plain cache serves inference (grad mode off; under grad mode it is bypassed, so gradients
//   flow as without it). The weights must not change while it is in use, or the copies go stale:
//   the sampler keeps one for one chain (diffusion/sampler.cpp).
// - A trainable cache serves training, for the parameters it is given only (any other leaf that
//   requires grad is cast as usual): its copies are leaves that require grad, so backward leaves
//   a parameter's gradient on its copy, in the copy's dtype, instead of casting it back. For a
//   weight used once per backward that is the same number (the product that made it rounded it to
//   bf16 already); gradients that meet on a copy (a weight used twice, or several backward passes
//   without zero_grad) are summed in bf16. AdamW owns such a cache: it reads the gradients from
//   the copies and writes the copies anew with the weights (engine/optim.hpp). So while it lives
//   the weights change through AdamW only (its step, its load_state): a weight written any other
//   way (copy_from, loading a checkpoint into the model) leaves its copy stale. The trainer's EMA
//   swap for a sample grid is no exception: it samples under a plain cache of its own and puts
//   the same bits back.
// Uses nest; the innermost cache in use answers.
class CastCache {
 public:
  CastCache();                                             // plain: for inference
  explicit CastCache(const std::vector<Tensor>& params);  // trainable, for these parameters
  ~CastCache();
  CastCache(const CastCache&) = delete;
  CastCache& operator=(const CastCache&) = delete;
  // Copies made by any CastCache since the process started (tests check that a chain reuses them).
  static int64_t copies_made();
  Tensor lookup(const Tensor& x, DType dtype);  // cast()'s: x's copy in dtype, made on first use
  Tensor find(const Tensor& x) const;           // x's copy (in any dtype), or an undefined tensor
  bool serves(const Tensor& x) const;           // whether cast() of x, a leaf that requires grad, asks this cache

  // Puts a cache in use on this thread for the guard's scope.
  class Use {
   public:
    explicit Use(CastCache& cache);
    ~Use();
    Use(const Use&) = delete;
    Use& operator=(const Use&) = delete;

   private:
    CastCache* previous_;
  };

 private:
  struct Entries;
  std::unique_ptr<Entries> entries_;
};

// ---- matrix products (ops/matmul.cpp) ----
// y = x w^T + b over the last dimension: x [..., in], w [out, in], b [out] or undefined; plus
// `residual` (y's shape; needs b) added in the same pass: a residual connection after a layer.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b = Tensor(), const Tensor& residual = Tensor());
// Batched product of [B, M, K] and [B, K, N] (each operand optionally transposed in its last two dims).
Tensor bmm(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);

// ---- convolution (ops/conv.cpp) ----
// x [N, H, W, Cin], w [Cout, k, k, Cin] with k = 1 or 3, stride 1, zero padding (k-1)/2,
// b [Cout] or undefined. Returns [N, H, W, Cout].
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b = Tensor());

// ---- normalisation (ops/norm.cpp) ----
// Group norm over (H, W, C/groups) per sample and group, then affine w, b [C], plus shift [N, C]
// (optional: a per-sample bias) and residual (optional: x's shape), both in x's dtype, then act.
Tensor group_norm(const Tensor& x, int64_t groups, const Tensor& w, const Tensor& b, float eps = 1e-5f,
                  Act act = Act::None, const Tensor& shift = Tensor(), const Tensor& residual = Tensor());
// Layer norm over the last dimension C, affine w, b [C].
Tensor layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, float eps = 1e-5f);

// ---- resampling and layout (ops/resample.cpp) ----
Tensor concat_channels(const Tensor& a, const Tensor& b);  // [N,H,W,Ca] ++ [N,H,W,Cb] on the last dim
Tensor max_pool2x2(const Tensor& x);                       // [N,H,W,C] -> [N,H/2,W/2,C]; H, W even
Tensor upsample2x(const Tensor& x);                        // bilinear, align_corners=True: [N,2H,2W,C]
Tensor embedding(const Tensor& ids, const Tensor& table);  // ids i64 [B], table [num, D] -> [B, D]

// ---- attention (ops/attention.cpp) ----
// Scaled dot-product attention over packed projections: qkv [B, L, 3C] holds q, k, v side by
// side (head h of q is columns h*C/heads .. of the first C), result [B, L, C] with heads
// concatenated. Scores are scaled by 1/sqrt(C/heads). No mask, no dropout.
Tensor attention(const Tensor& qkv, int64_t heads);
// nn.MultiheadAttention(x, x, x): in_w [3C, C], in_b [3C], out_w [C, C], out_b [C]; plus
// `residual` ([B, L, C], optional) added in the out-projection's pass.
Tensor multi_head_attention(const Tensor& x, const Tensor& in_w, const Tensor& in_b, const Tensor& out_w,
                            const Tensor& out_b, int64_t heads, const Tensor& residual = Tensor());

// ---- losses and reductions (ops/reduce.cpp) ----
Tensor mse_loss(const Tensor& pred, const Tensor& target);  // mean((pred - target)^2), a [1] tensor
Tensor sum(const Tensor& x);                                // [1]
Tensor mean(const Tensor& x);                               // [1]

// ---- classification (ops/xent.cpp) ----
// Mean softmax cross-entropy of logits [N, K] against labels i64 [N], each in [0, K): a [1]
// tensor, mean over rows of (log sum_j exp z[i, j]) - z[i, label_i]. Gradient flows to logits only.
Tensor cross_entropy(const Tensor& logits, const Tensor& labels);

}  // namespace ddpm
