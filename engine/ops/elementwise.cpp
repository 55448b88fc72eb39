// Elementwise ops: activations and broadcast arithmetic. Kernels: kernels/elementwise.hpp.
#include "engine/dispatch.hpp"
#include "engine/ops.hpp"

namespace ddpm {
namespace {

Tensor activation(const Tensor& x, Act act, const char* op) {
  check_f32(op, x, "input");
  Tensor y = empty_like(x);
  DDPM_DISPATCH(x.device(), act_fwd, act, x.data<float>(), y.data<float>(), x.numel());
  return record(y, op, {x}, [xs = x.detach(), act](const Tensor& g) {
    Tensor dx = empty_like(xs);
    DDPM_DISPATCH(xs.device(), act_bwd, act, xs.data<float>(), g.data<float>(), dx.data<float>(), xs.numel());
    return std::vector<Tensor>{dx};
  });
}

// How b broadcasts against a (numpy rules, b never larger than a), left-padded to 4 dims.
kernels::Broadcast broadcast_of(const Tensor& a, const Tensor& b, const char* op) {
  DDPM_CHECK(a.dim() <= 4 && b.dim() <= a.dim(), op, "cannot broadcast ", b.desc(), " to ", a.desc());
  kernels::Broadcast bc{};
  int64_t stride = 1;
  for (int d = 3; d >= 0; --d) {
    int64_t ai = d - (4 - a.dim()), bi = d - (4 - b.dim());
    int64_t an = ai >= 0 ? a.shape()[size_t(ai)] : 1;
    int64_t bn = bi >= 0 ? b.shape()[size_t(bi)] : 1;
    DDPM_CHECK(bn == an || bn == 1, op, "cannot broadcast ", b.desc(), " to ", a.desc());
    bc.shape[d] = an;
    bc.b_stride[d] = bn == 1 ? 0 : stride;
    stride *= bn;
  }
  return bc;
}

// Sums g (a's shape) over b's broadcast dimensions; g itself when nothing was broadcast.
Tensor reduce_to(const Tensor& g, const Shape& bshape, const kernels::Broadcast& bc) {
  if (g.shape() == bshape) return g;
  Tensor gb = Tensor::empty(bshape, DType::F32, g.device());
  DDPM_DISPATCH(g.device(), reduce_to_b, g.data<float>(), gb.data<float>(), bc);
  return gb;
}

Tensor binary(const Tensor& a, const Tensor& b, kernels::BinOp op, const char* name) {
  check_f32(name, a, "a");
  check_f32(name, b, "b");
  check_same_device(name, {&a, &b});
  kernels::Broadcast bc = broadcast_of(a, b, name);
  Tensor out = empty_like(a);
  DDPM_DISPATCH(a.device(), binary, op, a.data<float>(), b.data<float>(), out.data<float>(), bc);
  bool save = op == kernels::BinOp::Mul;  // only mul needs its inputs for the backward
  return record(out, name, {a, b},
                [as = save ? a.detach() : Tensor(), bs = save ? b.detach() : Tensor(), bshape = b.shape(), bc,
                 op](const Tensor& g) {
                  if (op == kernels::BinOp::Add) return std::vector<Tensor>{g, reduce_to(g, bshape, bc)};
                  if (op == kernels::BinOp::Sub) {
                    Tensor db = reduce_to(g, bshape, bc).clone();
                    DDPM_DISPATCH(g.device(), scale, db.data<float>(), db.numel(), -1.0f);
                    return std::vector<Tensor>{g, db};
                  }
                  Tensor da = empty_like(g), gb = empty_like(g);
                  DDPM_DISPATCH(g.device(), binary, kernels::BinOp::Mul, g.data<float>(), bs.data<float>(),
                                da.data<float>(), bc);
                  kernels::Broadcast same = broadcast_of(g, g, "mul");
                  DDPM_DISPATCH(g.device(), binary, kernels::BinOp::Mul, g.data<float>(), as.data<float>(),
                                gb.data<float>(), same);
                  return std::vector<Tensor>{da, reduce_to(gb, bshape, bc)};
                });
}

}  // namespace

Tensor gelu(const Tensor& x) { return activation(x, Act::GELU, "gelu"); }
Tensor silu(const Tensor& x) { return activation(x, Act::SiLU, "silu"); }
Tensor add(const Tensor& a, const Tensor& b) { return binary(a, b, kernels::BinOp::Add, "add"); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary(a, b, kernels::BinOp::Sub, "sub"); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary(a, b, kernels::BinOp::Mul, "mul"); }

Tensor add_gelu(const Tensor& a, const Tensor& b) {
  check_f32("add_gelu", a, "a");
  check_f32("add_gelu", b, "b");
  check_same_device("add_gelu", {&a, &b});
  DDPM_CHECK(a.shape() == b.shape(), "add_gelu", "shapes differ: ", a.desc(), " and ", b.desc());
  Tensor y = empty_like(a);
  DDPM_DISPATCH(a.device(), add_act_fwd, Act::GELU, a.data<float>(), b.data<float>(), y.data<float>(), a.numel());
  return record(y, "add_gelu", {a, b}, [as = a.detach(), bs = b.detach()](const Tensor& g) {
    Tensor d = empty_like(as);
    DDPM_DISPATCH(as.device(), add_act_bwd, Act::GELU, as.data<float>(), bs.data<float>(), g.data<float>(),
                  d.data<float>(), as.numel());
    return std::vector<Tensor>{d, d};
  });
}

}  // namespace ddpm
