// AdamW and EMA (engine/optim.hpp): checks, the per-step scalars, and the slot lists handed to
// kernels/optim.hpp.
#include "engine/optim.hpp"

#include <cmath>
#include <cstring>

#include "engine/dispatch.hpp"

namespace ddpm {
namespace {

// The device all of `params` live on; each must be a defined, non-empty f32 tensor.
Device common_device(const std::vector<Tensor>& params, const char* op) {
  DDPM_CHECK(!params.empty(), op, "no parameters given");
  for (size_t i = 0; i < params.size(); ++i) {
    check_f32(op, params[i], "parameter");
    DDPM_CHECK(params[i].device() == params[0].device(), op, "parameters on different devices: ", params[0].desc(),
               " (#0) and ", params[i].desc(), " (#", i, ")");
  }
  return params[0].device();
}

// `state[i]` must have params[i]'s shape and be f32 (the device may differ: it is copied).
void check_state(const std::vector<Tensor>& state, const std::vector<Tensor>& params, const char* op,
                 const char* what) {
  DDPM_CHECK(state.size() == params.size(), op, what, " has ", state.size(), " tensors for ", params.size(),
             " parameters");
  for (size_t i = 0; i < state.size(); ++i)
    DDPM_CHECK(state[i].defined() && state[i].dtype() == DType::F32 && state[i].shape() == params[i].shape(), op,
               what, " #", i, " is ", state[i].desc(), ", the parameter is ", params[i].desc());
}

void copy_all(std::vector<Tensor>& dst, const std::vector<Tensor>& src) {
  for (size_t i = 0; i < dst.size(); ++i) dst[i].copy_from(src[i]);
}

#ifdef DDPM_HAVE_CUDA
// The slot list on the GPU, uploaded only when it differs from the last one.
template <class Slot>
const Slot* device_slots(SlotCache<Slot>& cache, const std::vector<Slot>& slots) {
  static_assert(sizeof(Slot) % sizeof(int64_t) == 0, "slots are copied as int64 words");
  if (slots != cache.host || !cache.device.defined()) {
    Tensor words = Tensor::empty({int64_t(slots.size() * sizeof(Slot) / sizeof(int64_t))}, DType::I64);
    std::memcpy(words.raw(), slots.data(), slots.size() * sizeof(Slot));
    cache.device = words.to(Device::CUDA);  // read before the call returns (pageable), so `words` may go
    cache.host = slots;
  }
  return static_cast<const Slot*>(cache.device.raw());
}
#endif

}  // namespace

AdamW::AdamW(std::vector<Tensor> params, AdamWConfig config)
    : params_(std::move(params)), copies_(params_), config_(config), device_(common_device(params_, "AdamW")) {
  for (const Tensor& p : params_) {
    m_.push_back(Tensor::zeros(p.shape(), DType::F32, device_));
    v_.push_back(Tensor::zeros(p.shape(), DType::F32, device_));
  }
}

void AdamW::step() {
  std::vector<kernels::AdamWSlot> slots;
  int64_t total = 0;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    const Tensor copy = copies_.find(p);
    const Tensor g = p.grad(), g_low = copy.defined() ? copy.grad() : Tensor();
    if (!g.defined() && !g_low.defined()) continue;
    DDPM_CHECK(p.device() == device_, "AdamW", "parameter #", i, " moved to another device (", p.desc(),
               "): build the optimizer after moving the model");
    DDPM_CHECK(!g.defined() || (g.shape() == p.shape() && g.dtype() == DType::F32 && g.device() == device_), "AdamW",
               "grad ", g.desc(), " does not match parameter #", i, " ", p.desc());
    DDPM_CHECK(!g_low.defined() || (g_low.shape() == p.shape() && g_low.dtype() == DType::BF16 &&
                                    g_low.device() == device_),
               "AdamW", "grad ", g_low.desc(), " of the bf16 copy does not match parameter #", i, " ", p.desc());
    slots.push_back({p.data<float>(), g.defined() ? g.data<float>() : nullptr,
                     g_low.defined() ? g_low.data<bf16>() : nullptr, copy.defined() ? copy.data<bf16>() : nullptr,
                     m_[i].data<float>(), v_[i].data<float>(), p.numel(), total});
    total += p.numel();
  }
  if (slots.empty()) return;
  ++step_;
  const double lr = config_.lr, b1 = config_.beta1, b2 = config_.beta2, t = double(step_);
  const kernels::AdamWStep s{.decay = float(1.0 - lr * double(config_.weight_decay)),
                             .beta2 = config_.beta2,
                             .one_minus_beta1 = float(1.0 - b1),
                             .one_minus_beta2 = float(1.0 - b2),
                             .step_size = float(lr / (1.0 - std::pow(b1, t))),
                             .bc2_sqrt = float(std::sqrt(1.0 - std::pow(b2, t))),
                             .eps = config_.eps};
  if (device_ == Device::CPU) kernels::cpu::adamw(slots.data(), int64_t(slots.size()), s);
#ifdef DDPM_HAVE_CUDA
  else kernels::cuda::adamw(device_slots(cache_, slots), int64_t(slots.size()), total, s);
#endif
}

void AdamW::zero_grad() {
  for (Tensor& p : params_) {
    p.zero_grad();
    if (Tensor copy = copies_.find(p); copy.defined()) copy.zero_grad();
  }
}

void AdamW::load_state(const std::vector<Tensor>& m, const std::vector<Tensor>& v, int64_t steps) {
  check_state(m, params_, "AdamW::load_state", "exp_avg");
  check_state(v, params_, "AdamW::load_state", "exp_avg_sq");
  DDPM_CHECK(steps >= 0, "AdamW::load_state", "negative step count ", steps);
  copy_all(m_, m);
  copy_all(v_, v);
  step_ = steps;
  for (const Tensor& p : params_)
    if (Tensor copy = copies_.find(p); copy.defined()) copy.detach().copy_from(p.to(copy.dtype()));
}

EMA::EMA(const std::vector<Tensor>& params, float decay, int64_t start_step)
    : decay_(decay), start_step_(start_step), device_(common_device(params, "EMA")) {
  DDPM_CHECK(decay >= 0.0f && decay <= 1.0f, "EMA", "decay ", decay, " is outside [0, 1]");
  for (const Tensor& p : params) shadow_.push_back(p.clone());
}

void EMA::update(const std::vector<Tensor>& params, int64_t step) {
  check_state(params, shadow_, "EMA::update", "params");
  DDPM_CHECK(common_device(params, "EMA::update") == device_, "EMA::update", "parameters on ",
             device_name(params[0].device()), ", the EMA copy on ", device_name(device_));
  std::vector<kernels::EmaSlot> slots;
  int64_t total = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    slots.push_back({shadow_[i].data<float>(), params[i].data<float>(), params[i].numel(), total});
    total += params[i].numel();
  }
  const kernels::EmaStep s{.decay = decay_, .one_minus_decay = float(1.0 - double(decay_)), .copy = step < start_step_};
  if (device_ == Device::CPU) kernels::cpu::ema(slots.data(), int64_t(slots.size()), s);
#ifdef DDPM_HAVE_CUDA
  else kernels::cuda::ema(device_slots(cache_, slots), int64_t(slots.size()), total, s);
#endif
}

void EMA::load_state(const std::vector<Tensor>& shadow) {
  check_state(shadow, shadow_, "EMA::load_state", "shadow");
  copy_all(shadow_, shadow);
}

}  // namespace ddpm
