#include "model/info.hpp"

#include <map>

namespace ddpm {
namespace {

// DoubleConv(cin, cout, mid) on hw pixels: two 3x3 convolutions, 9 taps of a cin->mid and a
// mid->cout product per pixel.
void double_conv(ModuleCost& m, double hw, double cin, double cout, double mid) {
  m.conv_flops += 2 * hw * 9 * (cin * mid + mid * cout);
}

// SelfAttention(C) over L tokens: in_proj (3C x C), out_proj and the two feed-forward linears
// (C x C each) per token; scores and values L x L x C each over all heads together.
void self_attention(ModuleCost& m, double L, double C) {
  m.linear_flops += 2 * L * (3 * C * C + C * C + 2 * C * C);
  m.attention_flops += 2 * (2 * L * L * C);
}

}  // namespace

std::vector<ModuleCost> model_costs(const UNet& model, int64_t image_size) {
  DDPM_CHECK(image_size > 0 && image_size % 8 == 0, "model_costs", "image size must be a positive multiple of 8, got ",
             image_size);
  const UNetConfig& c = model.config();
  std::vector<ModuleCost> rows;
  std::map<std::string, size_t> index;
  for (const auto& [name, t] : model.named_parameters()) {
    std::string top = name.substr(0, name.find('.'));
    if (!index.count(top)) {
      index[top] = rows.size();
      rows.push_back({top});
    }
    rows[index[top]].params += t.numel();
  }
  auto at = [&](const char* n) -> ModuleCost& { return rows[index.at(n)]; };
  const double b = double(c.base_channels), td = double(c.time_dim);
  const double hw = double(image_size) * double(image_size);
  const double hw2 = hw / 4, hw4 = hw / 16, hw8 = hw / 64;  // pixels at H/2, H/4, H/8
  auto down = [&](const char* n, double px, double cin, double cout) {
    double_conv(at(n), px, cin, cin, cin);
    double_conv(at(n), px, cin, cout, cout);
    at(n).linear_flops += 2 * td * cout;  // emb_layer, once per image
  };
  auto up = [&](const char* n, double px, double cin, double cout) {
    double_conv(at(n), px, cin, cin, cin);
    double_conv(at(n), px, cin, cout, cin / 2);
    at(n).linear_flops += 2 * td * cout;
  };
  double_conv(at("inc"), hw, double(c.in_channels), b, b);
  down("down1", hw2, b, 2 * b);
  self_attention(at("sa1"), hw2, 2 * b);
  down("down2", hw4, 2 * b, 4 * b);
  self_attention(at("sa2"), hw4, 4 * b);
  down("down3", hw8, 4 * b, 4 * b);
  self_attention(at("sa3"), hw8, 4 * b);
  double_conv(at("bot1"), hw8, 4 * b, 8 * b, 8 * b);
  double_conv(at("bot2"), hw8, 8 * b, 8 * b, 8 * b);
  double_conv(at("bot3"), hw8, 8 * b, 4 * b, 4 * b);
  up("up1", hw4, 8 * b, 2 * b);
  self_attention(at("sa4"), hw4, 2 * b);
  up("up2", hw2, 4 * b, b);
  self_attention(at("sa5"), hw2, b);
  up("up3", hw, 2 * b, b);
  self_attention(at("sa6"), hw, b);
  at("outc").conv_flops += 2 * hw * b * double(c.out_channels);
  return rows;  // label_emb: a table lookup, no FLOPs
}

}  // namespace ddpm
