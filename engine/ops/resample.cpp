// Resampling, layout and gather ops: concat_channels, max_pool2x2, upsample2x, embedding.
// Kernels: kernels/resample.hpp.
#include "engine/dispatch.hpp"
#include "engine/ops.hpp"
#include "kernels/resample.hpp"

namespace ddpm {
namespace {

void check_nhwc(const char* op, const Tensor& x) {
  check_float(op, x, "input");
  DDPM_CHECK(x.dim() == 4, op, "input must be NHWC [N, H, W, C], got ", x.desc());
}

}  // namespace

Tensor concat_channels(const Tensor& a, const Tensor& b) {
  const char* op = "concat_channels";
  check_float_same(op, {{&a, "a"}, {&b, "b"}});
  check_same_device(op, {&a, &b});
  DDPM_CHECK(a.dim() >= 1 && a.dim() == b.dim(), op, "inputs must be [..., C] of the same rank: ", a.desc(), " and ",
             b.desc());
  Shape lead_a(a.shape().begin(), a.shape().end() - 1), lead_b(b.shape().begin(), b.shape().end() - 1);
  DDPM_CHECK(lead_a == lead_b, op, "all dimensions but the last must match: ", a.desc(), " and ", b.desc());
  const int64_t Ca = a.size(-1), Cb = b.size(-1), C = Ca + Cb, rows = a.numel() / Ca;
  Shape shape = lead_a;
  shape.push_back(C);
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  with_float_type(a.dtype(), [&](auto t) {
    using T = decltype(t);
    DDPM_DISPATCH(a.device(), copy_channels, a.data<T>(), Ca, 0, out.data<T>(), C, 0, rows, Ca);
    DDPM_DISPATCH(a.device(), copy_channels, b.data<T>(), Cb, 0, out.data<T>(), C, Ca, rows, Cb);
  });
  return record(out, op, {a, b}, [sa = a.shape(), sb = b.shape(), rows](const Tensor& g) {
    const int64_t Ca = sa.back(), Cb = sb.back(), C = Ca + Cb;
    Tensor da = Tensor::empty(sa, g.dtype(), g.device()), db = Tensor::empty(sb, g.dtype(), g.device());
    with_float_type(g.dtype(), [&](auto t) {
      using T = decltype(t);
      DDPM_DISPATCH(g.device(), copy_channels, g.data<T>(), C, 0, da.data<T>(), Ca, 0, rows, Ca);
      DDPM_DISPATCH(g.device(), copy_channels, g.data<T>(), C, Ca, db.data<T>(), Cb, 0, rows, Cb);
    });
    return std::vector<Tensor>{da, db};
  });
}

Tensor max_pool2x2(const Tensor& x) {
  const char* op = "max_pool2x2";
  check_nhwc(op, x);
  const int64_t N = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
  DDPM_CHECK(H % 2 == 0 && W % 2 == 0, op, "height and width must be even, got ", x.desc());
  Tensor y = Tensor::empty({N, H / 2, W / 2, C}, x.dtype(), x.device());
  with_float_type(x.dtype(), [&](auto t) {
    using T = decltype(t);
    DDPM_DISPATCH(x.device(), max_pool2x2_fwd, x.data<T>(), y.data<T>(), N, H, W, C);
  });
  // The backward recomputes each window's argmax from x (kernels/resample_cuda.cu says why).
  return record(y, op, {x}, [xs = x.detach()](const Tensor& g) {
    Tensor dx = empty_like(xs);
    with_float_type(xs.dtype(), [&](auto t) {
      using T = decltype(t);
      DDPM_DISPATCH(xs.device(), max_pool2x2_bwd, xs.data<T>(), g.data<T>(), dx.data<T>(), xs.size(0), xs.size(1),
                    xs.size(2), xs.size(3));
    });
    return std::vector<Tensor>{dx};
  });
}

Tensor upsample2x(const Tensor& x) {
  const char* op = "upsample2x";
  check_nhwc(op, x);
  const int64_t N = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
  Tensor y = Tensor::empty({N, 2 * H, 2 * W, C}, x.dtype(), x.device());
  with_float_type(x.dtype(), [&](auto t) {
    using T = decltype(t);
    DDPM_DISPATCH(x.device(), upsample2x_fwd, x.data<T>(), y.data<T>(), N, H, W, C);
  });
  return record(y, op, {x}, [shape = x.shape()](const Tensor& g) {
    Tensor dx = Tensor::empty(shape, g.dtype(), g.device());
    with_float_type(g.dtype(), [&](auto t) {
      using T = decltype(t);
      DDPM_DISPATCH(g.device(), upsample2x_bwd, g.data<T>(), dx.data<T>(), shape[0], shape[1], shape[2], shape[3]);
    });
    return std::vector<Tensor>{dx};
  });
}

Tensor embedding(const Tensor& ids, const Tensor& table) {
  const char* op = "embedding";
  DDPM_CHECK(ids.defined(), op, "ids are undefined");
  DDPM_CHECK(ids.dtype() == DType::I64, op, "ids must be i64, got ", ids.desc());
  DDPM_CHECK(ids.dim() == 1 && ids.numel() > 0, op, "ids must be a non-empty [B], got ", ids.desc());
  check_f32(op, table, "table");
  DDPM_CHECK(table.dim() == 2, op, "table must be [num, D], got ", table.desc());
  DDPM_CHECK(ids.device() == Device::CPU || ids.device() == table.device(), op, "ids ", ids.desc(),
             " must be on the host or on the table's device (", table.desc(), ")");
  const int64_t B = ids.numel(), num = table.size(0), D = table.size(1);
  // The ids are checked on the host, so an out-of-range id never reaches a kernel. Ids already on
  // the host (as the sampler keeps its labels) are checked there and uploaded without waiting for
  // the GPU; ids on the device come to the host first, which waits for the work queued before.
  for (int64_t id : ids.to_ints())
    DDPM_CHECK(id >= 0 && id < num, op, "id ", id, " out of range for table ", table.desc());
  const Tensor dev_ids = ids.to(table.device());
  Tensor out = Tensor::empty({B, D}, DType::F32, table.device());
  DDPM_DISPATCH(table.device(), embedding_fwd, dev_ids.data<int64_t>(), table.data<float>(), out.data<float>(), B, D);
  return record(out, op, {dev_ids, table}, [is = dev_ids.detach(), tshape = table.shape()](const Tensor& g) {
    Tensor dtable = Tensor::empty(tshape, DType::F32, g.device());
    DDPM_DISPATCH(g.device(), embedding_bwd, is.data<int64_t>(), g.data<float>(), dtable.data<float>(), is.numel(),
                  tshape[0], tshape[1]);
    return std::vector<Tensor>{Tensor(), dtable};
  });
}

}  // namespace ddpm
