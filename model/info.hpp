// Size and cost of the U-Net: parameters per top-level module (inc, down1, sa1, ..., label_emb)
// and forward FLOPs per image by napkin math (multiply-adds x2; norms, activations and adds are
// left out: they are bandwidth, not FLOPs). A training step costs about 3x the forward (the
// backward computes two products per forward product).
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "model/unet.hpp"

namespace ddpm {

struct ModuleCost {
  std::string name;
  int64_t params = 0;
  double conv_flops = 0;       // 3x3 and 1x1 convolutions
  double linear_flops = 0;     // attention projections, feed-forward, emb_layer
  double attention_flops = 0;  // the score (q k^T) and value (p v) products
  double flops() const { return conv_flops + linear_flops + attention_flops; }
};

// One row per top-level module in the reference's order, for images of side `image_size`.
std::vector<ModuleCost> model_costs(const UNet& model, int64_t image_size);

}  // namespace ddpm
