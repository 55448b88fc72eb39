// Optimizers over a list of parameters (their .grad() filled by backward).
//
// AdamW is PyTorch's torch.optim.AdamW update, step t = 1, 2, ...:
//   p <- p - lr * wd * p                          (decoupled weight decay, first)
//   m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
//   p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
// evaluated as PyTorch does (kernels/optim.hpp): the scalars 1 - lr * wd, lr / (1 - b1^t) and
// sqrt(1 - b2^t) in double on the host, the rest in f32 per element. Moments start at zero.
// EMA keeps a shadow copy e <- decay * e + (1 - decay) * p, and before `start_step` simply copies
// p (the seed's warm-up: the first 2000 steps overwrite the EMA).
//
// All parameters must live on one device (else ddpm::Error); build the optimizer after moving
// the model. On CUDA each update is one kernel launch over all tensors.
//
// Mixed precision: the parameters are the f32 master weights; a bf16 model works on bf16 copies
// of them. AdamW keeps those copies (weight_copies(), a trainable CastCache, engine/ops.hpp): put
// it in use around the forward and backward, and the backward leaves each copied parameter's
// gradient on its copy; step() reads it there and writes the copy anew from the updated weight,
// in the same pass. So no step converts a weight or a gradient on its own. One backward per step
// (zero_grad before each): gradients of several backward passes would be summed on the copies in
// bf16, not in f32.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/ops.hpp"
#include "engine/tensor.hpp"
#include "kernels/optim.hpp"

namespace ddpm {

// The CUDA kernels read the list of tensors (kernels/optim.hpp slots) from device memory. That
// array is uploaded again only when the list changes: the first step, a parameter gaining or
// losing its grad, a grad reallocated at another address. (A training loop that frees and
// allocates in the same order every step gets the same blocks back from the caching allocator,
// so the grads keep their addresses and uploads stop after the first steps.)
template <class Slot>
struct SlotCache {
  std::vector<Slot> host;
  Tensor device;  // the same bytes, on the GPU
};

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
  // Parameters without a grad (on them or on their copy) are skipped, as in PyTorch; a step where
  // none has one does nothing.
  void step();
  void zero_grad();  // the parameters' grads and their copies'
  CastCache& weight_copies() { return copies_; }
  int64_t steps() const { return step_; }
  AdamWConfig& config() { return config_; }
  // State for checkpoints: moments m and v, one of each per parameter, same order.
  const std::vector<Tensor>& exp_avg() const { return m_; }
  const std::vector<Tensor>& exp_avg_sq() const { return v_; }
  // The parameters must hold the weights this state belongs to already: their copies are made
  // again from them.
  void load_state(const std::vector<Tensor>& m, const std::vector<Tensor>& v, int64_t steps);

 private:
  std::vector<Tensor> params_, m_, v_;
  CastCache copies_;  // trainable, for params_
  AdamWConfig config_;
  int64_t step_ = 0;
  Device device_;
  SlotCache<kernels::AdamWSlot> cache_;
};

class EMA {
 public:
  EMA(const std::vector<Tensor>& params, float decay = 0.995f, int64_t start_step = 2000);
  // `params` as given to the constructor (same order, shapes and device); `step` counts from 0.
  void update(const std::vector<Tensor>& params, int64_t step);
  const std::vector<Tensor>& shadow() const { return shadow_; }
  void load_state(const std::vector<Tensor>& shadow);

 private:
  std::vector<Tensor> shadow_;
  float decay_;
  int64_t start_step_;
  Device device_;
  SlotCache<kernels::EmaSlot> cache_;
};

}  // namespace ddpm
