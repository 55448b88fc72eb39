// q_sample and reverse_step (engine/noise.hpp): input checks, then one kernel of kernels/noise.hpp.
#include "engine/noise.hpp"

#include "engine/dispatch.hpp"
#include "kernels/noise.hpp"

namespace ddpm {

NoisedBatch q_sample(const Tensor& x0, const Tensor& t, const Tensor& sqrt_abar, const Tensor& sqrt_1m_abar,
                     Generator& gen) {
  const char* op = "q_sample";
  check_f32(op, x0, "x0");
  check_f32(op, sqrt_abar, "sqrt_abar");
  check_f32(op, sqrt_1m_abar, "sqrt_1m_abar");
  DDPM_CHECK(t.defined() && t.dtype() == DType::I64 && t.dim() == 1 && t.size(0) == x0.size(0), op,
             "t must be i64 [batch] for x0 ", x0.desc(), ", got ", t.desc());
  DDPM_CHECK(sqrt_abar.dim() == 1 && sqrt_1m_abar.shape() == sqrt_abar.shape(), op,
             "tables must both be [T], got ", sqrt_abar.desc(), " and ", sqrt_1m_abar.desc());
  check_same_device(op, {&x0, &sqrt_abar, &sqrt_1m_abar});
  DDPM_CHECK(t.device() == Device::CPU || t.device() == x0.device(), op, "t ", t.desc(),
             " must be on the host or on x0's device (", x0.desc(), ")");
  const int64_t T = sqrt_abar.numel();
  // Checked on the host, so a bad index never reaches a kernel: timesteps already there (as the
  // trainer keeps them) cost no wait for the GPU, and go up with the other inputs.
  for (int64_t ti : t.to_ints())
    DDPM_CHECK(ti >= 0 && ti < T, op, "timestep ", ti, " is outside the tables' range [0, ", T, ")");
  const Tensor dev_t = t.to(x0.device());

  NoisedBatch out{empty_like(x0), empty_like(x0)};
  const int64_t batch = x0.size(0), per_sample = x0.numel() / batch;
  uint64_t first = gen.take(uint64_t(x0.numel()));
  DDPM_DISPATCH(x0.device(), q_sample, x0.data<float>(), dev_t.data<int64_t>(), sqrt_abar.data<float>(),
                sqrt_1m_abar.data<float>(), out.x_t.data<float>(), out.eps.data<float>(), batch, per_sample,
                gen.seed(), first);
  return out;
}

void reverse_step(Tensor& x, const Tensor& eps_c, const Tensor& eps_u, const ReverseCoefficients& c, Generator& gen) {
  const char* op = "reverse_step";
  check_f32(op, x, "x");
  check_f32(op, eps_c, "eps_c");
  DDPM_CHECK(eps_c.shape() == x.shape(), op, "eps_c ", eps_c.desc(), " does not match x ", x.desc());
  if (eps_u.defined()) {
    check_f32(op, eps_u, "eps_u");
    DDPM_CHECK(eps_u.shape() == x.shape(), op, "eps_u ", eps_u.desc(), " does not match x ", x.desc());
  }
  check_same_device(op, {&x, &eps_c, &eps_u});

  kernels::ReverseStep k{c.x0_c_x, c.x0_c_eps, c.c_x0, c.c_xt, c.sigma, c.guidance, c.clip_x0, c.clamp};
  uint64_t first = c.sigma != 0.0f ? gen.take(uint64_t(x.numel())) : gen.offset();
  const float* u = eps_u.defined() ? eps_u.data<float>() : nullptr;
  DDPM_DISPATCH(x.device(), reverse_step, x.data<float>(), eps_c.data<float>(), u, k, x.numel(), gen.seed(), first);
}

}  // namespace ddpm
