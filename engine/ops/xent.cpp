// Classification loss: cross_entropy. Kernels: kernels/xent.hpp.
//
// Backward rule: for loss = mean_i (lse_i - z[i, y_i]), d loss / d z[i, j] = (softmax(z_i)_j -
// [j == y_i]) / n. The forward saves lse (n floats) so the backward rebuilds the softmax from the
// logits in one pass instead of keeping a second [n, k] tensor alive.
#include "engine/dispatch.hpp"
#include "engine/ops.hpp"
#include "kernels/xent.hpp"

namespace ddpm {

Tensor cross_entropy(const Tensor& logits, const Tensor& labels) {
  const char* op = "cross_entropy";
  check_f32(op, logits, "logits");
  DDPM_CHECK(logits.dim() == 2, op, "logits must be [N, K], got ", logits.desc());
  DDPM_CHECK(labels.defined(), op, "labels are undefined");
  DDPM_CHECK(labels.dtype() == DType::I64, op, "labels must be i64, got ", labels.desc());
  DDPM_CHECK(labels.dim() == 1 && labels.size(0) == logits.size(0), op, "labels must be [", logits.size(0),
             "] for logits ", logits.desc(), ", got ", labels.desc());
  check_same_device(op, {&logits, &labels});
  const int64_t n = logits.size(0), k = logits.size(1);
  for (int64_t y : labels.to_ints())  // a few bytes to the host: an out-of-range label must not reach a kernel
    DDPM_CHECK(y >= 0 && y < k, op, "label ", y, " out of range [0, ", k, ") for logits ", logits.desc());
  Tensor out = Tensor::empty({1}, DType::F32, logits.device());
  Tensor lse = Tensor::empty({n}, DType::F32, logits.device());
  Tensor work = scratch_doubles(n, logits.device());
  DDPM_DISPATCH(logits.device(), xent_fwd, logits.data<float>(), labels.data<int64_t>(), n, k, lse.data<float>(),
                out.data<float>(), as_doubles(work));
  return record(out, op, {logits, labels},
                [zs = logits.detach(), ys = labels.detach(), lse](const Tensor& g) {
                  Tensor dz = empty_like(zs);
                  DDPM_DISPATCH(zs.device(), xent_bwd, zs.data<float>(), ys.data<int64_t>(), lse.data<float>(),
                                g.data<float>(), zs.size(0), zs.size(1), dz.data<float>());
                  return std::vector<Tensor>{dz, Tensor()};
                });
}

}  // namespace ddpm
