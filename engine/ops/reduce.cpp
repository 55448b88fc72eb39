// Losses and reductions to one value: mse_loss, sum, mean. Kernels: kernels/reduce.hpp.
#include "engine/dispatch.hpp"
#include "engine/ops.hpp"
#include "kernels/reduce.hpp"

namespace ddpm {
namespace {

// sum(x) * scale as a [1] tensor; the backward broadcasts g * scale.
Tensor scaled_sum(const Tensor& x, double scale, const char* op) {
  check_f32(op, x, "input");
  const int64_t n = x.numel();
  Tensor out = Tensor::empty({1}, DType::F32, x.device());
  Tensor work = scratch_doubles(kernels::reduce_parts(n), x.device());
  DDPM_DISPATCH(x.device(), sum, x.data<float>(), n, scale, out.data<float>(), as_doubles(work));
  return record(out, op, {x}, [shape = x.shape(), scale](const Tensor& g) {
    Tensor dx = Tensor::empty(shape, DType::F32, g.device());
    DDPM_DISPATCH(g.device(), fill_scaled, g.data<float>(), float(scale), dx.data<float>(), dx.numel());
    return std::vector<Tensor>{dx};
  });
}

}  // namespace

Tensor sum(const Tensor& x) { return scaled_sum(x, 1.0, "sum"); }
Tensor mean(const Tensor& x) { return scaled_sum(x, 1.0 / double(x.defined() ? x.numel() : 1), "mean"); }

// The backward recomputes pred - target from the saved inputs (kernels/reduce_cuda.cu says why).
Tensor mse_loss(const Tensor& pred, const Tensor& target) {
  const char* op = "mse_loss";
  check_f32(op, pred, "pred");
  check_f32(op, target, "target");
  check_same_device(op, {&pred, &target});
  DDPM_CHECK(pred.shape() == target.shape(), op, "pred ", pred.desc(), " and target ", target.desc(),
             " must have the same shape");
  const int64_t n = pred.numel();
  Tensor out = Tensor::empty({1}, DType::F32, pred.device());
  Tensor work = scratch_doubles(kernels::reduce_parts(n), pred.device());
  DDPM_DISPATCH(pred.device(), mse, pred.data<float>(), target.data<float>(), n, out.data<float>(), as_doubles(work));
  return record(out, op, {pred, target},
                [ps = pred.detach(), ts = target.detach(), target_grad = target.requires_grad()](const Tensor& g) {
                  Tensor dp = empty_like(ps), dt = target_grad ? empty_like(ts) : Tensor();
                  DDPM_DISPATCH(ps.device(), mse_bwd, ps.data<float>(), ts.data<float>(), g.data<float>(),
                                ps.numel(), dp.data<float>(), target_grad ? dt.data<float>() : nullptr);
                  return std::vector<Tensor>{dp, dt};
                });
}

}  // namespace ddpm
