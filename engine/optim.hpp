// Optimizers over a list of parameters (their .grad() filled by backward).
//
// AdamW is PyTorch's torch.optim.AdamW update, step t = 1, 2, ...:
//   p <- p - lr * wd * p                          (decoupled weight decay, first)
//   m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
//   p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
// EMA keeps a shadow copy e <- decay * e + (1 - decay) * p, and before `start_step` simply copies
// p (the seed's warm-up: the first 2000 steps overwrite the EMA).
#pragma once
#include <cstdint>
#include <vector>

#include "engine/tensor.hpp"

namespace ddpm {

struct AdamWConfig {
  float lr = 3e-4f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.01f;
};

class AdamW {
 public:
  AdamW(std::vector<Tensor> params, AdamWConfig config = {});
  void step();  // parameters without a grad are skipped (as in PyTorch)
  void zero_grad();
  int64_t steps() const { return step_; }
  AdamWConfig& config() { return config_; }
  // State for checkpoints: moments m and v, one of each per parameter, same order.
  const std::vector<Tensor>& exp_avg() const { return m_; }
  const std::vector<Tensor>& exp_avg_sq() const { return v_; }
  void load_state(const std::vector<Tensor>& m, const std::vector<Tensor>& v, int64_t steps);

 private:
  std::vector<Tensor> params_, m_, v_;
  AdamWConfig config_;
  int64_t step_ = 0;
};

class EMA {
 public:
  EMA(const std::vector<Tensor>& params, float decay = 0.995f, int64_t start_step = 2000);
  void update(const std::vector<Tensor>& params, int64_t step);
  const std::vector<Tensor>& shadow() const { return shadow_; }
  void load_state(const std::vector<Tensor>& shadow);

 private:
  std::vector<Tensor> shadow_;
  float decay_;
  int64_t start_step_;
};

}  // namespace ddpm
