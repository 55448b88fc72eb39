// The U-Net's structure (names, shapes and counts against PyTorch's state_dict), initialisation,
// time embedding, forward shapes and input checks, and the napkin-math costs of model/info.
// Numerical agreement with PyTorch is test_model_reference.cpp's job.
#include <cmath>
#include <fstream>
#include <sstream>

#include "helpers.hpp"
#include "model/info.hpp"
#include "model/unet.hpp"

using namespace ddpm;
using Catch::Matchers::Contains;

namespace {

UNetConfig seed_config(int64_t classes = 10) {
  UNetConfig c;  // the defaults are the seed's: c 3, b 64, time_dim 256, heads 4
  c.num_classes = classes;
  return c;
}

UNetConfig small_config(int64_t cin, int64_t classes) {
  UNetConfig c;
  c.in_channels = cin;
  c.out_channels = cin + 1;
  c.base_channels = 4;
  c.time_dim = 16;
  c.num_classes = classes;
  return c;
}

Shape pytorch_shape(const Shape& s) { return s.size() == 4 ? Shape{s[0], s[3], s[1], s[2]} : s; }

}  // namespace

TEST_CASE("the seed U-Net has PyTorch's parameter names, shapes, order and count", "[model][unet]") {
  // tests/data/seed_state_dict_keys.txt was written by tools/make_reference.py --dump-keys from the
  // PyTorch twin: "name dim0 dim1 ..." per line, in state_dict order.
  std::ifstream f(std::string(DDPM_TEST_DATA) + "/seed_state_dict_keys.txt");
  REQUIRE(f);
  std::vector<std::pair<std::string, Shape>> want;
  for (std::string line; std::getline(f, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream in(line);
    std::string name;
    in >> name;
    Shape s;
    for (int64_t d; in >> d;) s.push_back(d);
    want.emplace_back(name, s);
  }
  REQUIRE(want.size() == 183);

  Generator gen(1);
  UNet model(seed_config(), gen);
  auto named = model.named_parameters();
  REQUIRE(named.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    INFO(want[i].first);
    CHECK(named[i].first == want[i].first);
    CHECK(pytorch_shape(named[i].second.shape()) == want[i].second);
  }
  CHECK(model.parameter_count() == 23335299);

  UNet uncond(seed_config(0), gen);
  CHECK(uncond.parameter_count() == 23332739);
  CHECK(uncond.named_parameters().size() == 182);
  for (const auto& [name, t] : uncond.named_parameters()) CHECK(name != "label_emb.weight");
}

TEST_CASE("parameters are initialised like PyTorch's defaults", "[model][unet]") {
  Generator gen = test::fresh_generator();
  CAPTURE(gen.seed());
  UNetConfig c = seed_config();
  c.base_channels = 16;
  UNet model(c, gen);
  // U(-a, a) per tensor: every |v| <= a, and the largest >= 0.8 a (a miss has probability
  // 0.8^n < 2e-5 for the n >= 48 checked). Pooled over all tensors, v / a has the standard
  // deviation 1/sqrt(3) of U(-1, 1).
  double pooled_sq = 0;
  int64_t pooled_n = 0;
  auto check_uniform = [&](const std::string& name, const Tensor& t, double a) {
    INFO(name << " " << t.desc() << " bound " << a);
    double mx = 0;
    for (float x : t.to_floats()) {
      mx = std::max(mx, double(std::fabs(x)));
      pooled_sq += double(x) * x / (a * a);
    }
    pooled_n += t.numel();
    CHECK(mx <= a * (1 + 1e-6));
    if (t.numel() >= 48) CHECK(mx >= 0.8 * a);
  };
  auto check_const = [](const std::string& name, const Tensor& t, float value) {
    INFO(name);
    for (float x : t.to_floats()) REQUIRE(x == value);
  };
  for (const auto& [name, t] : model.named_parameters()) {
    auto ends = [&](const std::string& s) { return name.ends_with(s); };
    bool norm = name.find("double_conv") != std::string::npos || name.find("ln.") != std::string::npos ||
                name.find("ff_self.0") != std::string::npos;
    if (ends("mha.in_proj_weight")) {
      check_uniform(name, t, std::sqrt(6.0 / double(t.size(0) + t.size(1))));  // Xavier
    } else if (ends("in_proj_bias") || ends("out_proj.bias")) {
      check_const(name, t, 0.0f);
    } else if (name == "label_emb.weight") {
      double sq = 0;
      for (float x : t.to_floats()) sq += double(x) * x;
      CHECK(std::sqrt(sq / double(t.numel())) == Approx(1.0).epsilon(0.1));  // N(0, 1), 2560 values
    } else if (norm && t.dim() == 1) {
      check_const(name, t, ends("weight") ? 1.0f : 0.0f);
    } else if (t.dim() == 4) {
      check_uniform(name, t, 1.0 / std::sqrt(double(t.numel() / t.size(0))));  // conv: fan_in = kh kw cin
    } else if (t.dim() == 2) {
      check_uniform(name, t, 1.0 / std::sqrt(double(t.size(1))));  // linear, out_proj
    } else {  // linear and outc biases share their weight's bound
      int64_t fan_in = name == "outc.bias" ? c.base_channels : ends("emb_layer.1.bias") ? c.time_dim : t.size(0);
      check_uniform(name, t, 1.0 / std::sqrt(double(fan_in)));
    }
  }
  CHECK(std::sqrt(pooled_sq / double(pooled_n)) == Approx(1.0 / std::sqrt(3.0)).epsilon(0.01));
}

TEST_CASE("timestep_embedding is sines then cosines of t / 10000^(2i/dim)", "[model][unet]") {
  Tensor t = Tensor::from_ints({0, 1, 17, 999}, {4});
  for (int64_t dim : {2, 8, 256}) {
    CAPTURE(dim);
    std::vector<float> e = timestep_embedding(t, dim).to_floats();
    REQUIRE(e.size() == size_t(4 * dim));
    std::vector<int64_t> ts = t.to_ints();
    for (size_t n = 0; n < 4; ++n)
      for (int64_t i = 0; i < dim / 2; ++i) {
        double f = 1.0 / std::pow(10000.0, double(2 * i) / double(dim));
        REQUIRE(e[n * size_t(dim) + size_t(i)] == Approx(std::sin(double(ts[n]) * f)).margin(1e-6));
        REQUIRE(e[n * size_t(dim) + size_t(dim / 2 + i)] == Approx(std::cos(double(ts[n]) * f)).margin(1e-6));
      }
  }
  CHECK_THROWS_WITH(timestep_embedding(t, 7), Contains("even"));
  CHECK_THROWS_WITH(timestep_embedding(Tensor::zeros({4}), 8), Contains("integer"));
}

TEST_CASE("U-Net forward gives the noise shape for sides 8, 16, 24 and batch 1", "[model][unet]") {
  Generator gen = test::fresh_generator();
  CAPTURE(gen.seed());
  for (int64_t classes : {0, 3}) {
    UNet model(small_config(2, classes), gen);
    for (int64_t side : {8, 16, 24}) {
      CAPTURE(classes, side);
      Tensor x = Tensor::randn({1, side, side, 2}, gen);
      Tensor t = Tensor::from_ints({int64_t(side) * 37}, {1});
      Tensor y = Tensor::from_ints({2}, {1});
      NoGradGuard ng;
      Tensor out = model.forward(x, t, classes ? y : Tensor());
      REQUIRE(out.shape() == Shape{1, side, side, 3});
      for (float v : out.to_floats()) REQUIRE(std::isfinite(v));
      // Conditioning changes the output; an unconditional model ignores y.
      Tensor with_y = model.forward(x, t, y);
      if (classes) CHECK(test::rel_err(with_y, model.forward(x, t)) > 1e-6);
      else CHECK(test::rel_err(with_y, out) == 0.0);
      // The two halves a graph replays (embed on the host side, forward_embedded on the device
      // side) are forward, bit for bit.
      CHECK(model.forward_embedded(x, model.embed(t, y, Device::CPU)).to_floats() == with_y.to_floats());
    }
  }
}

TEST_CASE("U-Net backward reaches every parameter", "[model][unet]") {
  Generator gen = test::fresh_generator();
  CAPTURE(gen.seed());
  UNet model(small_config(1, 4), gen);
  Tensor x = Tensor::randn({2, 8, 8, 1}, gen);
  Tensor out = model.forward(x, Tensor::from_ints({3, 500}, {2}), Tensor::from_ints({1, 3}, {2}));
  mse_loss(out, Tensor::randn(out.shape(), gen)).backward();
  for (const auto& [name, p] : model.named_parameters()) {
    INFO(name);
    REQUIRE(p.grad().defined());
    double sq = 0;
    for (float g : p.grad().to_floats()) sq += double(g) * g;
    CHECK(sq > 0);
  }
}

TEST_CASE("U-Net in bf16 mixed precision tracks f32; master weights and gradients stay f32", "[model][unet][bf16]") {
  Generator gen = test::fresh_generator();
  CAPTURE(gen.seed());
  UNetConfig c = small_config(1, 4);
  c.base_channels = 8;
  UNet model(c, gen);
  Tensor x = Tensor::randn({2, 16, 16, 1}, gen), target = Tensor::randn({2, 16, 16, 2}, gen);
  const Tensor t = Tensor::from_ints({3, 500}, {2}), y = Tensor::from_ints({1, 3}, {2});
  auto run = [&](DType dtype, std::vector<float>& grads) {
    model.set_compute_dtype(dtype);
    model.zero_grad();
    Tensor out = model.forward(x, t, y);
    REQUIRE(out.dtype() == DType::F32);  // the loss and the sampler always see f32
    mse_loss(out, target).backward();
    grads.clear();
    for (const auto& [name, p] : model.named_parameters()) {
      INFO(name);
      REQUIRE(p.dtype() == DType::F32);
      REQUIRE(p.grad().dtype() == DType::F32);
      for (float g : p.grad().to_floats()) grads.push_back(g);
    }
    return out.to_floats();
  };
  std::vector<float> g32, g16;
  const std::vector<float> y32 = run(DType::F32, g32), y16 = run(DType::BF16, g16);
  // About 40 layers, each rounding its output to 8 bits (<= 0.4%); the norms keep errors from
  // compounding. Seen over 5 runs: forward 0.8-1.4%, all gradients together 1.1-3.3%.
  CHECK(test::rel_err(y16, y32) < 0.04);
  CHECK(test::rel_err(g16, g32) < 0.07);
  CHECK_THROWS_WITH(model.set_compute_dtype(DType::I32), Catch::Contains("f32 or bf16"));
}

TEST_CASE("U-Net rejects bad configs and inputs", "[model][unet]") {
  Generator gen(3);
  UNetConfig c = small_config(1, 2);
  c.heads = 3;
  CHECK_THROWS_WITH(UNet(c, gen), Contains("not a multiple of heads"));
  c = small_config(1, 2);
  c.time_dim = 9;
  CHECK_THROWS_WITH(UNet(c, gen), Contains("time_dim"));
  c = small_config(1, 2);
  c.base_channels = 0;
  CHECK_THROWS_AS(UNet(c, gen), Error);

  UNet model(small_config(1, 2), gen);
  Tensor t = Tensor::from_ints({1}, {1});
  CHECK_THROWS_WITH(model.forward(Tensor::zeros({1, 8, 8, 2}), t), Contains("x must be [N, H, W, 1]"));
  CHECK_THROWS_WITH(model.forward(Tensor::zeros({1, 12, 8, 1}), t), Contains("multiples of 8"));
  CHECK_THROWS_WITH(model.forward(Tensor::zeros({8, 8, 1}), t), Contains("x must be"));
  CHECK_THROWS_WITH(model.forward(Tensor::zeros({2, 8, 8, 1}), t), Contains("t must be [2]"));
  CHECK_THROWS_WITH(model.forward(Tensor::zeros({1, 8, 8, 1}), t, Tensor::from_ints({0, 1}, {2})),
                    Contains("y must be [1]"));
  CHECK_THROWS_AS(model.forward(Tensor::zeros({1, 8, 8, 1}), t, Tensor::from_ints({2}, {1})), Error);  // class 2 of 2
  CHECK_THROWS_WITH(model.forward_embedded(Tensor::zeros({1, 8, 8, 1}), Tensor::zeros({1, 7})),
                    Contains("e must be [1, 16]"));
}

TEST_CASE("info: parameters per module and the seed's FLOPs", "[model][info]") {
  Generator gen(5);
  UNet model(seed_config(), gen);
  std::vector<ModuleCost> at64 = model_costs(model, 64);
  std::vector<std::string> names;
  int64_t params = 0;
  double flops = 0, attention = 0;
  for (const ModuleCost& m : at64) {
    names.push_back(m.name);
    params += m.params;
    flops += m.flops();
    attention += m.attention_flops;
  }
  CHECK(names == std::vector<std::string>{"inc", "down1", "sa1", "down2", "sa2", "down3", "sa3", "bot1", "bot2",
                                          "bot3", "up1", "sa4", "up2", "sa5", "up3", "sa6", "outc", "label_emb"});
  CHECK(params == model.parameter_count());
  CHECK(at64.back().params == 10 * 256);
  // seed-model.md: 18.7 GFLOP per image at 64x64, 5.2 of them in the attention products; 3.7 at 32x32.
  CHECK(flops / 1e9 == Approx(18.7).margin(0.05));
  CHECK(attention / 1e9 == Approx(5.2).margin(0.05));
  double f32 = 0;
  for (const ModuleCost& m : model_costs(model, 32)) f32 += m.flops();
  CHECK(f32 / 1e9 == Approx(3.7).margin(0.05));
  // The last attention (sa6, 4096 tokens, C = 64) alone: 4 L^2 C.
  CHECK(at64[15].attention_flops == Approx(4.0 * 4096 * 4096 * 64));
  CHECK_THROWS_WITH(model_costs(model, 12), Contains("multiple of 8"));
}
