// The seed U-Net's building blocks (../shared/docs/seed-model.md, "Blocks"), each a Module whose
// parameter names are the PyTorch reference's (e.g. "double_conv.0.weight", "mha.in_proj_weight").
// Activations are NHWC; `se` below is silu(e) of the time/class embedding e [N, time_dim], which
// the U-Net computes once and every emb_layer shares.
//
// Initialisation follows PyTorch's defaults: conv and linear weights and biases
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)); norm weights 1, biases 0; embeddings N(0, 1); attention
// in_proj_weight Xavier-uniform, in_proj_bias and out_proj.bias 0.
#pragma once
#include <memory>

#include "engine/module.hpp"
#include "engine/rng.hpp"

namespace ddpm {

// Conv 3x3 (no bias) -> GroupNorm(1) -> GELU -> Conv 3x3 (no bias) -> GroupNorm(1), optionally
// gelu(x + that). Weights under "double_conv.{0,1,3,4}". `shift` [N, cout] (a block without the
// residual only) is added to the output per sample and channel, inside the last norm: Down's and
// Up's embedding add, which then costs no pass over the activations of its own.
class DoubleConv : public Module {
 public:
  DoubleConv(int64_t cin, int64_t cout, int64_t mid, bool residual, Generator& gen);
  Tensor forward(const Tensor& x, const Tensor& shift = Tensor()) const;

 private:
  bool residual_;
  Tensor w0_, n1w_, n1b_, w3_, n4w_, n4b_;
};

// Linear(se) [N, cout], added to the block's output broadcast over H, W: the "emb_layer" (0 SiLU,
// 1 Linear) of Down and Up. The add happens in the last norm (DoubleConv's shift).
class EmbLayer : public Module {
 public:
  EmbLayer(int64_t time_dim, int64_t cout, Generator& gen);
  Tensor forward(const Tensor& se) const;

 private:
  Tensor w_, b_;
};

// MaxPool 2x2 -> DoubleConv(cin, cin, residual) -> DoubleConv(cin, cout), plus the embedding.
class Down : public Module {
 public:
  Down(int64_t cin, int64_t cout, int64_t time_dim, Generator& gen);
  Tensor forward(const Tensor& x, const Tensor& se) const;

 private:
  std::shared_ptr<DoubleConv> c1_, c2_;
  std::shared_ptr<EmbLayer> emb_;
};

// Bilinear x2 (align_corners) -> concat [skip, up] -> DoubleConv(cin, cin, residual) ->
// DoubleConv(cin, cout, mid cin/2), plus the embedding.
class Up : public Module {
 public:
  Up(int64_t cin, int64_t cout, int64_t time_dim, Generator& gen);
  Tensor forward(const Tensor& x, const Tensor& skip, const Tensor& se) const;

 private:
  std::shared_ptr<DoubleConv> c0_, c1_;
  std::shared_ptr<EmbLayer> emb_;
};

// Pre-norm multi-head self-attention over the H*W pixels, then a pre-norm feed-forward, each
// with a residual: a = mha(ln(x)) + x; out = ff_self(a) + a.
class SelfAttention : public Module {
 public:
  SelfAttention(int64_t channels, int64_t heads, Generator& gen);
  Tensor forward(const Tensor& x) const;

 private:
  int64_t heads_;
  Tensor in_w_, in_b_, out_w_, out_b_, ln_w_, ln_b_, ff0_w_, ff0_b_, ff1_w_, ff1_b_, ff3_w_, ff3_b_;
};

// The output projection: Conv 1x1 with bias ("weight" [cout, 1, 1, cin], "bias").
class Conv1x1 : public Module {
 public:
  Conv1x1(int64_t cin, int64_t cout, Generator& gen);
  Tensor forward(const Tensor& x) const;

 private:
  Tensor w_, b_;
};

// A lookup table "weight" [num, dim] (the class embedding).
class Embedding : public Module {
 public:
  Embedding(int64_t num, int64_t dim, Generator& gen);
  Tensor forward(const Tensor& ids) const;

 private:
  Tensor w_;
};

}  // namespace ddpm
