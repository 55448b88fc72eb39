// The seed's class-conditional U-Net (../shared/docs/seed-model.md is the contract; docs/model.md
// walks it). Parameter names are the PyTorch reference's state_dict keys. Activations are NHWC.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "engine/module.hpp"
#include "engine/rng.hpp"

namespace ddpm {

struct UNetConfig {
  int64_t in_channels = 3;
  int64_t out_channels = 3;
  int64_t base_channels = 64;  // b: widths are b, 2b, 4b, 8b
  int64_t time_dim = 256;
  int64_t num_classes = 10;    // 0 = unconditional (no label_emb)
  int64_t heads = 4;
  // Far past any model this engine trains (the seed: b = 64, time_dim 256): they keep a typo or a
  // corrupt checkpoint from asking for terabytes of weights.
  static constexpr int64_t kMaxWidth = 4096, kMaxTimeDim = 4 * kMaxWidth, kMaxClasses = 1000000;
};

class UNet : public Module {
 public:
  // Parameters are initialised like PyTorch's defaults for each layer type, drawn from `gen`.
  UNet(const UNetConfig& config, Generator& gen);

  // x [N, H, W, in_channels] (H, W multiples of 8), t i64 [N] timesteps, y i64 [N] class labels
  // or undefined for the unconditional branch (an unconditional model ignores y). Returns the
  // predicted noise [N, H, W, out_channels]. t and y may be on the host whatever x's device: both
  // are read on the host (the embedding, the label check), so on the host nothing waits for the GPU.
  Tensor forward(const Tensor& x, const Tensor& t, const Tensor& y = Tensor()) const;

  // forward() in its two parts, for a caller that replays the network as a graph (engine/graph.hpp;
  // diffusion/sampler.cpp): embed() is the conditioning vector e [N, time_dim], f32 on `device`,
  // that forward() computes from t and y (host work: the sinusoids, the label check, an upload);
  // forward_embedded() is the rest, device work only. forward(x, t, y) is
  // forward_embedded(x, embed(t, y, x.device())).
  Tensor embed(const Tensor& t, const Tensor& y, Device device) const;
  Tensor forward_embedded(const Tensor& x, const Tensor& e) const;

  const UNetConfig& config() const { return config_; }

  // The dtype of the activations: f32 (default) or bf16, mixed precision. With bf16 the input
  // and the time/class embedding are cast on entry, conv and linear weights are cast to bf16
  // copies on use, every activation is stored in bf16 (all kernels compute in f32 inside), and
  // the output is cast back to f32, so the loss, the sampler and the f32 master weights do not
  // change. A run-time setting: checkpoints hold f32 weights either way.
  void set_compute_dtype(DType dtype);
  DType compute_dtype() const { return compute_dtype_; }

 private:
  void check_input(const Tensor& x) const;

  UNetConfig config_;
  DType compute_dtype_ = DType::F32;
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// The sinusoidal embedding of integer timesteps t [N]: [N, dim], sines then cosines,
// f_i = 10000^(-2i/dim). Exposed for tests and for docs/diffusion.md.
Tensor timestep_embedding(const Tensor& t, int64_t dim);

}  // namespace ddpm
