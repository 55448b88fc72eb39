#include "model/blocks.hpp"

#include <cmath>

#include "engine/ops.hpp"
#include "model/init.hpp"

namespace ddpm {
namespace {

// A weight in the dtype of the data it meets. In a bf16 run the matrix products (conv, linear,
// attention projections, with their biases) take bf16 copies of the f32 master weights. Without a
// CastCache in use each forward makes them and the gradients come back through the cast as f32;
// the sampler and the trainer keep one copy per weight instead (engine/ops.hpp, engine/optim.hpp).
// Norm parameters stay f32 (the norm kernels read them as f32 either way).
Tensor like(const Tensor& w, const Tensor& x) { return cast(w, x.dtype()); }

}  // namespace

DoubleConv::DoubleConv(int64_t cin, int64_t cout, int64_t mid, bool residual, Generator& gen) : residual_(residual) {
  DDPM_CHECK(!residual || cin == cout, "DoubleConv", "a residual block needs cin == cout, got ", cin, " and ", cout);
  w0_ = register_parameter("double_conv.0.weight", fan_in_uniform({mid, 3, 3, cin}, 9 * cin, gen));
  n1w_ = register_parameter("double_conv.1.weight", Tensor::full({mid}, 1.0f));
  n1b_ = register_parameter("double_conv.1.bias", Tensor::zeros({mid}));
  w3_ = register_parameter("double_conv.3.weight", fan_in_uniform({cout, 3, 3, mid}, 9 * mid, gen));
  n4w_ = register_parameter("double_conv.4.weight", Tensor::full({cout}, 1.0f));
  n4b_ = register_parameter("double_conv.4.bias", Tensor::zeros({cout}));
}

Tensor DoubleConv::forward(const Tensor& x, const Tensor& shift) const {
  DDPM_CHECK(!residual_ || !shift.defined(), "DoubleConv", "a residual block takes no shift");
  Tensor h = group_norm(conv2d(x, like(w0_, x)), 1, n1w_, n1b_, 1e-5f, Act::GELU);
  // With the residual, gelu(x + norm(h)) in the norm's own pass.
  if (residual_) return group_norm(conv2d(h, like(w3_, x)), 1, n4w_, n4b_, 1e-5f, Act::GELU, Tensor(), x);
  return group_norm(conv2d(h, like(w3_, x)), 1, n4w_, n4b_, 1e-5f, Act::None, shift);
}

EmbLayer::EmbLayer(int64_t time_dim, int64_t cout, Generator& gen) {
  w_ = register_parameter("1.weight", fan_in_uniform({cout, time_dim}, time_dim, gen));
  b_ = register_parameter("1.bias", fan_in_uniform({cout}, time_dim, gen));
}

Tensor EmbLayer::forward(const Tensor& se) const { return linear(se, like(w_, se), like(b_, se)); }

Down::Down(int64_t cin, int64_t cout, int64_t time_dim, Generator& gen) {
  c1_ = register_module("maxpool_conv.1", std::make_shared<DoubleConv>(cin, cin, cin, true, gen));
  c2_ = register_module("maxpool_conv.2", std::make_shared<DoubleConv>(cin, cout, cout, false, gen));
  emb_ = register_module("emb_layer", std::make_shared<EmbLayer>(time_dim, cout, gen));
}

Tensor Down::forward(const Tensor& x, const Tensor& se) const {
  return c2_->forward(c1_->forward(max_pool2x2(x)), emb_->forward(se));
}

Up::Up(int64_t cin, int64_t cout, int64_t time_dim, Generator& gen) {
  c0_ = register_module("conv.0", std::make_shared<DoubleConv>(cin, cin, cin, true, gen));
  c1_ = register_module("conv.1", std::make_shared<DoubleConv>(cin, cout, cin / 2, false, gen));
  emb_ = register_module("emb_layer", std::make_shared<EmbLayer>(time_dim, cout, gen));
}

Tensor Up::forward(const Tensor& x, const Tensor& skip, const Tensor& se) const {
  Tensor h = concat_channels(skip, upsample2x(x));
  return c1_->forward(c0_->forward(h), emb_->forward(se));
}

SelfAttention::SelfAttention(int64_t c, int64_t heads, Generator& gen) : heads_(heads) {
  DDPM_CHECK(heads > 0 && c % heads == 0, "SelfAttention", c, " channels do not split into ", heads, " heads");
  // Xavier-uniform over the packed [3C, C] matrix: bound sqrt(6 / (C + 3C)).
  in_w_ = register_parameter("mha.in_proj_weight", uniform({3 * c, c}, std::sqrt(6.0 / double(4 * c)), gen));
  in_b_ = register_parameter("mha.in_proj_bias", Tensor::zeros({3 * c}));
  out_w_ = register_parameter("mha.out_proj.weight", fan_in_uniform({c, c}, c, gen));
  out_b_ = register_parameter("mha.out_proj.bias", Tensor::zeros({c}));
  ln_w_ = register_parameter("ln.weight", Tensor::full({c}, 1.0f));
  ln_b_ = register_parameter("ln.bias", Tensor::zeros({c}));
  ff0_w_ = register_parameter("ff_self.0.weight", Tensor::full({c}, 1.0f));
  ff0_b_ = register_parameter("ff_self.0.bias", Tensor::zeros({c}));
  ff1_w_ = register_parameter("ff_self.1.weight", fan_in_uniform({c, c}, c, gen));
  ff1_b_ = register_parameter("ff_self.1.bias", fan_in_uniform({c}, c, gen));
  ff3_w_ = register_parameter("ff_self.3.weight", fan_in_uniform({c, c}, c, gen));
  ff3_b_ = register_parameter("ff_self.3.bias", fan_in_uniform({c}, c, gen));
}

Tensor SelfAttention::forward(const Tensor& x) const {
  const Shape& s = x.shape();
  Tensor tokens = x.reshape({s[0], s[1] * s[2], s[3]});  // NHWC: token h*W + w, free
  Tensor x_ln = layer_norm(tokens, ln_w_, ln_b_);
  // Both residual adds happen in the pass of the linear layer before them (linear's residual).
  Tensor a = multi_head_attention(x_ln, like(in_w_, x), like(in_b_, x), like(out_w_, x), like(out_b_, x), heads_,
                                  tokens);
  Tensor f = linear(gelu(linear(layer_norm(a, ff0_w_, ff0_b_), like(ff1_w_, x), like(ff1_b_, x))), like(ff3_w_, x),
                    like(ff3_b_, x), a);
  return f.reshape(s);
}

Conv1x1::Conv1x1(int64_t cin, int64_t cout, Generator& gen) {
  w_ = register_parameter("weight", fan_in_uniform({cout, 1, 1, cin}, cin, gen));
  b_ = register_parameter("bias", fan_in_uniform({cout}, cin, gen));
}

Tensor Conv1x1::forward(const Tensor& x) const { return conv2d(x, like(w_, x), like(b_, x)); }

Embedding::Embedding(int64_t num, int64_t dim, Generator& gen) {
  w_ = register_parameter("weight", Tensor::randn({num, dim}, gen));
}

Tensor Embedding::forward(const Tensor& ids) const { return embedding(ids, w_); }

}  // namespace ddpm
