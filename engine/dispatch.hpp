// Helpers shared by the op files: device dispatch and input checks.
#pragma once
#include "engine/autograd.hpp"
#include "engine/tensor.hpp"

// DDPM_DISPATCH(device, fn, args...) calls kernels::cpu::fn(args...) or kernels::cuda::fn(args...).
#ifdef DDPM_HAVE_CUDA
#define DDPM_DISPATCH(device, fn, ...)                                                  \
  do {                                                                                  \
    if ((device) == ::ddpm::Device::CPU) ::ddpm::kernels::cpu::fn(__VA_ARGS__);        \
    else ::ddpm::kernels::cuda::fn(__VA_ARGS__);                                        \
  } while (0)
#else
#define DDPM_DISPATCH(device, fn, ...) ::ddpm::kernels::cpu::fn(__VA_ARGS__)
#endif

namespace ddpm {

// A defined, non-empty f32 tensor.
inline void check_f32(const char* op, const Tensor& t, const char* what) {
  DDPM_CHECK(t.defined(), op, what, " is undefined");
  DDPM_CHECK(t.dtype() == DType::F32, op, what, " must be f32, got ", t.desc());
  DDPM_CHECK(t.numel() > 0, op, what, " is empty: ", t.desc());
}

// A defined, non-empty tensor of a floating dtype (f32 or bf16).
inline void check_float(const char* op, const Tensor& t, const char* what) {
  DDPM_CHECK(t.defined(), op, what, " is undefined");
  DDPM_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::BF16, op, what, " must be f32 or bf16, got ", t.desc());
  DDPM_CHECK(t.numel() > 0, op, what, " is empty: ", t.desc());
}

// check_float on `ts` (undefined ones after the first are skipped: an absent bias), all of the
// first one's dtype: ops never mix f32 and bf16 data silently (cast() converts, explicitly).
inline void check_float_same(const char* op, std::initializer_list<std::pair<const Tensor*, const char*>> ts) {
  const Tensor* first = nullptr;
  for (auto [t, what] : ts) {
    if (!t->defined() && first) continue;
    check_float(op, *t, what);
    if (!first) first = t;
    DDPM_CHECK(t->dtype() == first->dtype(), op, "mixes dtypes: ", first->desc(), " and ", t->desc(),
               " (cast one of them)");
  }
}

// Calls fn(T{}) with T the C++ element type of a floating dtype (float for f32, bf16 for bf16):
// one op body serves both, reading tensors with data<T>(); the kernels overload on T.
template <class Fn> void with_float_type(DType t, Fn&& fn) {
  if (t == DType::BF16) fn(bf16{});
  else fn(float{});
}

// All defined tensors among `ts` on the device of the first.
inline void check_same_device(const char* op, std::initializer_list<const Tensor*> ts) {
  const Tensor* first = nullptr;
  for (const Tensor* t : ts) {
    if (!t->defined()) continue;
    if (!first) first = t;
    DDPM_CHECK(t->device() == first->device(), op, "tensors on different devices: ", first->desc(), " and ",
               t->desc());
  }
}

// db[c] = sum over the rows of g viewed as [rows, cols], in g's dtype: the gradient of a bias
// added to every row (linear and conv2d; ops/matmul.cpp). Not differentiable.
Tensor bias_grad(const Tensor& g, int64_t rows, int64_t cols);

inline Tensor empty_like(const Tensor& t) { return Tensor::empty(t.shape(), t.dtype(), t.device()); }

// Scratch for a kernel's split reductions: `n` doubles on `device` (held as 8-byte I64 elements,
// the engine has no f64 tensors). Dropping it right after the launch is safe: the CUDA allocator
// hands a freed block only to later work on the same stream.
inline Tensor scratch_doubles(int64_t n, Device device) { return Tensor::empty({n}, DType::I64, device); }
inline double* as_doubles(const Tensor& t) { return static_cast<double*>(t.raw()); }

}  // namespace ddpm
