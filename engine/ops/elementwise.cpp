// Elementwise ops: activations, broadcast arithmetic and the f32/bf16 cast. Kernels:
// kernels/elementwise.hpp.
#include <map>
#include <set>

#include "engine/autograd.hpp"
#include "engine/dispatch.hpp"
#include "engine/ops.hpp"

namespace ddpm {
namespace {

thread_local CastCache* g_cast_cache = nullptr;
int64_t g_cast_copies = 0;

Tensor activation(const Tensor& x, Act act, const char* op) {
  check_float(op, x, "input");
  Tensor y = empty_like(x);
  with_float_type(x.dtype(), [&](auto t) {
    using T = decltype(t);
    DDPM_DISPATCH(x.device(), act_fwd, act, x.data<T>(), y.data<T>(), x.numel());
  });
  return record(y, op, {x}, [xs = x.detach(), act](const Tensor& g) {
    Tensor dx = empty_like(xs);
    with_float_type(xs.dtype(), [&](auto t) {
      using T = decltype(t);
      DDPM_DISPATCH(xs.device(), act_bwd, act, xs.data<T>(), g.data<T>(), dx.data<T>(), xs.numel());
    });
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
  Tensor gb = Tensor::empty(bshape, g.dtype(), g.device());
  with_float_type(g.dtype(), [&](auto t) {
    using T = decltype(t);
    DDPM_DISPATCH(g.device(), reduce_to_b, g.data<T>(), gb.data<T>(), bc);
  });
  return gb;
}

// out = a op b, b broadcast as bc says (a fresh tensor of a's shape and dtype).
Tensor apply(kernels::BinOp op, const Tensor& a, const Tensor& b, const kernels::Broadcast& bc) {
  Tensor out = empty_like(a);
  with_float_type(a.dtype(), [&](auto t) {
    using T = decltype(t);
    DDPM_DISPATCH(a.device(), binary, op, a.data<T>(), b.data<T>(), out.data<T>(), bc);
  });
  return out;
}

Tensor binary(const Tensor& a, const Tensor& b, kernels::BinOp op, const char* name) {
  check_float_same(name, {{&a, "a"}, {&b, "b"}});
  check_same_device(name, {&a, &b});
  kernels::Broadcast bc = broadcast_of(a, b, name);
  Tensor out = apply(op, a, b, bc);
  bool save = op == kernels::BinOp::Mul;  // only mul needs its inputs for the backward
  return record(out, name, {a, b},
                [as = save ? a.detach() : Tensor(), bs = save ? b.detach() : Tensor(), bshape = b.shape(), bc,
                 op](const Tensor& g) {
                  if (op == kernels::BinOp::Add) return std::vector<Tensor>{g, reduce_to(g, bshape, bc)};
                  if (op == kernels::BinOp::Sub) {
                    Tensor db = reduce_to(g, bshape, bc).clone();
                    with_float_type(db.dtype(), [&](auto t) {
                      DDPM_DISPATCH(g.device(), scale, db.data<decltype(t)>(), db.numel(), -1.0f);
                    });
                    return std::vector<Tensor>{g, db};
                  }
                  Tensor da = apply(kernels::BinOp::Mul, g, bs, bc);
                  Tensor gb = apply(kernels::BinOp::Mul, g, as, broadcast_of(g, g, "mul"));
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
  check_float_same("add_gelu", {{&a, "a"}, {&b, "b"}});
  check_same_device("add_gelu", {&a, &b});
  DDPM_CHECK(a.shape() == b.shape(), "add_gelu", "shapes differ: ", a.desc(), " and ", b.desc());
  Tensor y = empty_like(a);
  with_float_type(a.dtype(), [&](auto t) {
    using T = decltype(t);
    DDPM_DISPATCH(a.device(), add_act_fwd, Act::GELU, a.data<T>(), b.data<T>(), y.data<T>(), a.numel());
  });
  return record(y, "add_gelu", {a, b}, [as = a.detach(), bs = b.detach()](const Tensor& g) {
    Tensor d = empty_like(as);
    with_float_type(as.dtype(), [&](auto t) {
      using T = decltype(t);
      DDPM_DISPATCH(as.device(), add_act_bwd, Act::GELU, as.data<T>(), bs.data<T>(), g.data<T>(), d.data<T>(),
                    as.numel());
    });
    return std::vector<Tensor>{d, d};
  });
}

Tensor cast(const Tensor& x, DType dtype) {
  check_float("cast", x, "input");
  DDPM_CHECK(dtype == DType::F32 || dtype == DType::BF16, "cast", "target must be f32 or bf16, got ",
             dtype_name(dtype));
  if (x.dtype() == dtype) return x;
  // A parameter: a leaf that requires grad (under grad mode activations require grad too).
  if (g_cast_cache && x.requires_grad() && !x.grad_fn() && g_cast_cache->serves(x))
    return g_cast_cache->lookup(x, dtype);
  return record(x.to(dtype), "cast", {x}, [from = x.dtype()](const Tensor& g) { return std::vector<Tensor>{g.to(from)}; });
}

// The copies by source; each entry keeps its source alive, so its address names it. A source has
// one copy at most: of the two float dtypes, cast() to its own returns the source itself.
struct CastCache::Entries {
  std::map<const TensorImpl*, std::pair<Tensor, Tensor>> copies;
  bool trainable = false;
  std::set<const TensorImpl*> params;  // trainable: the parameters it serves
};

CastCache::CastCache() : entries_(std::make_unique<Entries>()) {}
CastCache::CastCache(const std::vector<Tensor>& params) : CastCache() {
  entries_->trainable = true;
  for (const Tensor& p : params) entries_->params.insert(p.impl());
}
CastCache::~CastCache() = default;
int64_t CastCache::copies_made() { return g_cast_copies; }

bool CastCache::serves(const Tensor& x) const {
  return entries_->trainable ? entries_->params.count(x.impl()) > 0 : !grad_enabled();
}

Tensor CastCache::lookup(const Tensor& x, DType dtype) {
  auto [it, fresh] = entries_->copies.try_emplace(x.impl());
  if (fresh) {
    Tensor copy = x.to(dtype);
    if (entries_->trainable) copy.set_requires_grad();
    it->second = {x, copy};
    ++g_cast_copies;
  }
  return it->second.second;
}

Tensor CastCache::find(const Tensor& x) const {
  auto it = entries_->copies.find(x.impl());
  return it == entries_->copies.end() ? Tensor() : it->second.second;
}

CastCache::Use::Use(CastCache& cache) : previous_(g_cast_cache) { g_cast_cache = &cache; }
CastCache::Use::~Use() { g_cast_cache = previous_; }

}  // namespace ddpm
