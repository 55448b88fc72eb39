#include "model/unet.hpp"

#include <cmath>

#include "engine/ops.hpp"
#include "model/blocks.hpp"

namespace ddpm {

struct UNet::Impl {
  std::shared_ptr<DoubleConv> inc, bot1, bot2, bot3;
  std::shared_ptr<Down> down1, down2, down3;
  std::shared_ptr<Up> up1, up2, up3;
  std::shared_ptr<SelfAttention> sa1, sa2, sa3, sa4, sa5, sa6;
  std::shared_ptr<Conv1x1> outc;
  std::shared_ptr<Embedding> label_emb;  // null when unconditional
};

UNet::UNet(const UNetConfig& c, Generator& gen) : config_(c), impl_(std::make_shared<Impl>()) {
  constexpr int64_t kMaxWidth = UNetConfig::kMaxWidth, kMaxClasses = UNetConfig::kMaxClasses;
  DDPM_CHECK(c.in_channels > 0 && c.out_channels > 0 && c.base_channels > 0 && c.num_classes >= 0 &&
                 c.in_channels <= kMaxWidth && c.out_channels <= kMaxWidth && c.base_channels <= kMaxWidth &&
                 c.num_classes <= kMaxClasses,
             "UNet", "bad config: in ", c.in_channels, ", out ", c.out_channels, ", base ", c.base_channels,
             ", classes ", c.num_classes, " (channels in [1, ", kMaxWidth, "], classes in [0, ", kMaxClasses, "])");
  DDPM_CHECK(c.time_dim >= 2 && c.time_dim % 2 == 0 && c.time_dim <= UNetConfig::kMaxTimeDim, "UNet",
             "time_dim must be even and in [2, ", UNetConfig::kMaxTimeDim, "], got ", c.time_dim);
  DDPM_CHECK(c.heads > 0, "UNet", "heads must be positive, got ", c.heads);
  DDPM_CHECK(c.base_channels % c.heads == 0, "UNet", "base_channels ", c.base_channels, " is not a multiple of heads ",
             c.heads);
  const int64_t b = c.base_channels, td = c.time_dim, h = c.heads;
  Impl& m = *impl_;
  // Registration order is the reference's state_dict order.
  m.inc = register_module("inc", std::make_shared<DoubleConv>(c.in_channels, b, b, false, gen));
  m.down1 = register_module("down1", std::make_shared<Down>(b, 2 * b, td, gen));
  m.sa1 = register_module("sa1", std::make_shared<SelfAttention>(2 * b, h, gen));
  m.down2 = register_module("down2", std::make_shared<Down>(2 * b, 4 * b, td, gen));
  m.sa2 = register_module("sa2", std::make_shared<SelfAttention>(4 * b, h, gen));
  m.down3 = register_module("down3", std::make_shared<Down>(4 * b, 4 * b, td, gen));
  m.sa3 = register_module("sa3", std::make_shared<SelfAttention>(4 * b, h, gen));
  m.bot1 = register_module("bot1", std::make_shared<DoubleConv>(4 * b, 8 * b, 8 * b, false, gen));
  m.bot2 = register_module("bot2", std::make_shared<DoubleConv>(8 * b, 8 * b, 8 * b, false, gen));
  m.bot3 = register_module("bot3", std::make_shared<DoubleConv>(8 * b, 4 * b, 4 * b, false, gen));
  m.up1 = register_module("up1", std::make_shared<Up>(8 * b, 2 * b, td, gen));
  m.sa4 = register_module("sa4", std::make_shared<SelfAttention>(2 * b, h, gen));
  m.up2 = register_module("up2", std::make_shared<Up>(4 * b, b, td, gen));
  m.sa5 = register_module("sa5", std::make_shared<SelfAttention>(b, h, gen));
  m.up3 = register_module("up3", std::make_shared<Up>(2 * b, b, td, gen));
  m.sa6 = register_module("sa6", std::make_shared<SelfAttention>(b, h, gen));
  m.outc = register_module("outc", std::make_shared<Conv1x1>(b, c.out_channels, gen));
  if (c.num_classes > 0) m.label_emb = register_module("label_emb", std::make_shared<Embedding>(c.num_classes, td, gen));
}

Tensor timestep_embedding(const Tensor& t, int64_t dim) {
  DDPM_CHECK(t.defined() && t.dim() == 1 && (t.dtype() == DType::I64 || t.dtype() == DType::I32),
             "timestep_embedding", "t must be integer [N], got ", t.desc());
  DDPM_CHECK(dim >= 2 && dim % 2 == 0, "timestep_embedding", "dim must be even and >= 2, got ", dim);
  // Host double precision: sin(999 * f) in f32 arithmetic would already be off by ~1e-4.
  std::vector<int64_t> ts = t.to_ints();
  const int64_t half = dim / 2;
  std::vector<float> e(ts.size() * size_t(dim));
  for (size_t n = 0; n < ts.size(); ++n)
    for (int64_t i = 0; i < half; ++i) {
      double arg = double(ts[n]) * std::pow(10000.0, -2.0 * double(i) / double(dim));
      e[n * size_t(dim) + size_t(i)] = float(std::sin(arg));
      e[n * size_t(dim) + size_t(half + i)] = float(std::cos(arg));
    }
  return Tensor::from_floats(e, {t.size(0), dim}, t.device());
}

Tensor UNet::forward(const Tensor& x, const Tensor& t, const Tensor& y) const {
  check_input(x);
  DDPM_CHECK(t.defined() && t.dim() == 1 && t.size(0) == x.size(0), "UNet", "t must be [", x.size(0), "], got ",
             t.desc());
  return forward_embedded(x, embed(t, y, x.device()));
}

Tensor UNet::embed(const Tensor& t, const Tensor& y, Device device) const {
  const Impl& m = *impl_;
  Tensor e = timestep_embedding(t, config_.time_dim).to(device);  // constant: no gradient flows into t
  if (y.defined() && m.label_emb) {
    DDPM_CHECK(y.dim() == 1 && y.size(0) == t.size(0), "UNet", "y must be [", t.size(0), "], got ", y.desc());
    e = add(e, m.label_emb->forward(y));
  }
  return e;
}

void UNet::check_input(const Tensor& x) const {
  const UNetConfig& c = config_;
  DDPM_CHECK(x.defined() && x.dim() == 4 && x.size(3) == c.in_channels, "UNet", "x must be [N, H, W, ",
             c.in_channels, "], got ", x.desc());
  DDPM_CHECK(x.size(1) % 8 == 0 && x.size(2) % 8 == 0 && x.size(1) > 0 && x.size(2) > 0, "UNet",
             "image sides must be positive multiples of 8, got ", x.desc());
}

Tensor UNet::forward_embedded(const Tensor& x, const Tensor& e) const {
  check_input(x);
  DDPM_CHECK(e.defined() && e.dim() == 2 && e.size(0) == x.size(0) && e.size(1) == config_.time_dim, "UNet",
             "e must be [", x.size(0), ", ", config_.time_dim, "], got ", e.desc());
  const Impl& m = *impl_;
  Tensor se = cast(silu(e), compute_dtype_);  // shared by every emb_layer

  Tensor x1 = m.inc->forward(cast(x, compute_dtype_));
  Tensor x2 = m.sa1->forward(m.down1->forward(x1, se));
  Tensor x3 = m.sa2->forward(m.down2->forward(x2, se));
  Tensor x4 = m.sa3->forward(m.down3->forward(x3, se));
  x4 = m.bot3->forward(m.bot2->forward(m.bot1->forward(x4)));
  Tensor h = m.sa4->forward(m.up1->forward(x4, x3, se));
  h = m.sa5->forward(m.up2->forward(h, x2, se));
  h = m.sa6->forward(m.up3->forward(h, x1, se));
  return cast(m.outc->forward(h), DType::F32);
}

void UNet::set_compute_dtype(DType dtype) {
  DDPM_CHECK(dtype == DType::F32 || dtype == DType::BF16, "UNet", "compute dtype must be f32 or bf16, got ",
             dtype_name(dtype));
  compute_dtype_ = dtype;
}

}  // namespace ddpm
