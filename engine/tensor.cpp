#include "engine/tensor.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#include "engine/autograd.hpp"
#include "engine/rng.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/rng.hpp"
#ifdef DDPM_HAVE_CUDA
#include "kernels/cuda_context.hpp"
#endif

namespace ddpm {

std::string shape_str(const Shape& s) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << "]";
  return o.str();
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

namespace {

void check_shape(const Shape& shape, const char* op) {
  for (int64_t d : shape) DDPM_CHECK(d >= 0, op, "negative dimension in shape ", shape_str(shape));
}

void check_device(Device device, const char* op) {
  DDPM_CHECK(device == Device::CPU || cuda_available(), op,
             "CUDA device requested but ", (cuda_built ? "no GPU is present" : "this build has no CUDA backend"));
}

// Copies bytes between any two devices. A copy to the host waits for the copy (and so for all work
// queued before it) so the host can use the result. A copy from the host does not wait for the
// GPU: cudaMemcpyAsync from pageable memory returns once it has read the source (the driver stages
// it), and the stream orders the copy before every kernel that reads it. So a loop that uploads a
// few values per step (timestep embeddings, ids) lets the host queue the next step while the GPU
// runs this one.
void copy_bytes(void* dst, Device dd, const void* src, Device sd, size_t bytes) {
  if (bytes == 0) return;
  if (dd == Device::CPU && sd == Device::CPU) {
    std::memcpy(dst, src, bytes);
    return;
  }
#ifdef DDPM_HAVE_CUDA
  cudaMemcpyKind kind = sd == Device::CPU ? cudaMemcpyHostToDevice
                        : dd == Device::CPU ? cudaMemcpyDeviceToHost
                                            : cudaMemcpyDeviceToDevice;
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, cuda::stream()));
  if (kind == cudaMemcpyDeviceToHost) cuda::synchronize();
#endif
}

}  // namespace

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  check_shape(shape, "empty");
  check_device(device, "empty");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(size_t(shape_numel(shape)) * dtype_size(dtype), device);
  impl->shape = shape;
  impl->dtype = dtype;
  return Tensor(impl);
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  size_t bytes = size_t(t.numel()) * dtype_size(dtype);
  if (device == Device::CPU) {
    std::memset(t.raw(), 0, bytes);
  } else {
#ifdef DDPM_HAVE_CUDA
    CUDA_CHECK(cudaMemsetAsync(t.raw(), 0, bytes, cuda::stream()));
#endif
  }
  return t;
}

Tensor Tensor::full(const Shape& shape, float value, Device device) {
  Tensor t = empty(shape, DType::F32, device);
  if (device == Device::CPU) kernels::cpu::fill(t.data<float>(), t.numel(), value);
#ifdef DDPM_HAVE_CUDA
  else kernels::cuda::fill(t.data<float>(), t.numel(), value);
#endif
  return t;
}

Tensor Tensor::from_floats(const std::vector<float>& values, const Shape& shape, Device device) {
  DDPM_CHECK(int64_t(values.size()) == shape_numel(shape), "from_floats", values.size(),
             " values do not fill shape ", shape_str(shape));
  Tensor t = empty(shape, DType::F32, device);
  copy_bytes(t.raw(), device, values.data(), Device::CPU, values.size() * 4);
  return t;
}

Tensor Tensor::from_ints(const std::vector<int64_t>& values, const Shape& shape, Device device) {
  DDPM_CHECK(int64_t(values.size()) == shape_numel(shape), "from_ints", values.size(),
             " values do not fill shape ", shape_str(shape));
  Tensor t = empty(shape, DType::I64, device);
  copy_bytes(t.raw(), device, values.data(), Device::CPU, values.size() * 8);
  return t;
}

Tensor Tensor::randn(const Shape& shape, Generator& gen, Device device) {
  Tensor t = empty(shape, DType::F32, device);
  gen.fill_normal(t);
  return t;
}

Tensor Tensor::rand(const Shape& shape, Generator& gen, Device device) {
  Tensor t = empty(shape, DType::F32, device);
  gen.fill_uniform(t);
  return t;
}

void Generator::fill_normal(Tensor& t) {
  t.check_dtype(DType::F32, "fill_normal");
  uint64_t first = take(uint64_t(t.numel()));
  if (t.device() == Device::CPU) kernels::cpu::fill_normal(t.data<float>(), t.numel(), seed_, first);
#ifdef DDPM_HAVE_CUDA
  else kernels::cuda::fill_normal(t.data<float>(), t.numel(), seed_, first);
#endif
}

void Generator::fill_uniform(Tensor& t) {
  t.check_dtype(DType::F32, "fill_uniform");
  uint64_t first = take(uint64_t(t.numel()));
  if (t.device() == Device::CPU) kernels::cpu::fill_uniform(t.data<float>(), t.numel(), seed_, first);
#ifdef DDPM_HAVE_CUDA
  else kernels::cuda::fill_uniform(t.data<float>(), t.numel(), seed_, first);
#endif
}

const Shape& Tensor::shape() const {
  DDPM_CHECK(defined(), "tensor", "use of an undefined tensor");
  return impl_->shape;
}

int64_t Tensor::size(int64_t d) const {
  int64_t n = dim();
  DDPM_CHECK(d >= -n && d < n, "size", "dimension ", d, " out of range for shape ", shape_str(shape()));
  return shape()[size_t(d < 0 ? d + n : d)];
}

int64_t Tensor::numel() const { return shape_numel(shape()); }
DType Tensor::dtype() const {
  DDPM_CHECK(defined(), "tensor", "use of an undefined tensor");
  return impl_->dtype;
}
Device Tensor::device() const {
  DDPM_CHECK(defined(), "tensor", "use of an undefined tensor");
  return impl_->storage->device();
}

std::string Tensor::desc() const {
  if (!defined()) return "undefined";
  return std::string(dtype_name(dtype())) + shape_str(shape()) + " " + device_name(device());
}

void* Tensor::raw() const {
  DDPM_CHECK(defined(), "tensor", "use of an undefined tensor");
  return static_cast<char*>(impl_->storage->data()) + impl_->offset * int64_t(dtype_size(impl_->dtype));
}

void Tensor::check_dtype(DType want, const char* op) const {
  DDPM_CHECK(dtype() == want, op, "expected ", dtype_name(want), ", got ", desc());
}

Tensor Tensor::to(Device device) const {
  if (device == this->device()) return *this;
  Tensor t = empty(shape(), dtype(), device);
  copy_bytes(t.raw(), device, raw(), this->device(), size_t(numel()) * dtype_size(dtype()));
  return t;
}

Tensor Tensor::to(DType target) const {
  if (target == dtype()) return *this;
  Tensor t = empty(shape(), target, device());
  int64_t n = numel();
  bool cpu = device() == Device::CPU;
  if (dtype() == DType::F32 && target == DType::BF16) {
    if (cpu) kernels::cpu::f32_to_bf16(data<float>(), t.data<bf16>(), n);
#ifdef DDPM_HAVE_CUDA
    else kernels::cuda::f32_to_bf16(data<float>(), t.data<bf16>(), n);
#endif
  } else if (dtype() == DType::BF16 && target == DType::F32) {
    if (cpu) kernels::cpu::bf16_to_f32(data<bf16>(), t.data<float>(), n);
#ifdef DDPM_HAVE_CUDA
    else kernels::cuda::bf16_to_f32(data<bf16>(), t.data<float>(), n);
#endif
  } else if (cpu && dtype() == DType::I64 && target == DType::I32) {
    for (int64_t i = 0; i < n; ++i) t.data<int32_t>()[i] = int32_t(data<int64_t>()[i]);
  } else if (cpu && dtype() == DType::I32 && target == DType::I64) {
    for (int64_t i = 0; i < n; ++i) t.data<int64_t>()[i] = data<int32_t>()[i];
  } else {
    detail::fail("to", "no conversion from ", desc(), " to ", dtype_name(target));
  }
  return t;
}

Tensor Tensor::clone() const {
  Tensor t = empty(shape(), dtype(), device());
  t.copy_from(*this);
  return t;
}

void Tensor::copy_from(const Tensor& src) {
  DDPM_CHECK(shape() == src.shape() && dtype() == src.dtype(), "copy_from", "destination ", desc(),
             " does not match source ", src.desc());
  copy_bytes(raw(), device(), src.raw(), src.device(), size_t(numel()) * dtype_size(dtype()));
}

std::vector<float> Tensor::to_floats() const {
  Tensor h = to(Device::CPU).to(DType::F32);
  const float* p = h.data<float>();
  return std::vector<float>(p, p + h.numel());
}

bool all_finite(const std::vector<float>& values) {
  return std::all_of(values.begin(), values.end(), [](float x) { return std::isfinite(x); });
}

bool Tensor::all_finite() const { return ddpm::all_finite(to_floats()); }

std::vector<int64_t> Tensor::to_ints() const {
  Tensor h = to(Device::CPU);
  if (h.dtype() == DType::I32) h = h.to(DType::I64);
  const int64_t* p = h.data<int64_t>();
  return std::vector<int64_t>(p, p + h.numel());
}

float Tensor::item() const {
  DDPM_CHECK(numel() == 1, "item", "expected one element, got ", desc());
  return to_floats()[0];
}

Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = impl_->storage;
  impl->offset = impl_->offset;
  impl->shape = impl_->shape;
  impl->dtype = impl_->dtype;
  return Tensor(impl);
}

void Tensor::set_data(const Tensor& src) {
  DDPM_CHECK(shape() == src.shape() && dtype() == src.dtype(), "set_data", "cannot replace ", desc(), " by ",
             src.desc());
  impl_->storage = src.impl_->storage;
  impl_->offset = src.impl_->offset;
}

Tensor Tensor::reshape(const Shape& new_shape) const {
  Shape s = new_shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      DDPM_CHECK(infer < 0, "reshape", "more than one -1 in ", shape_str(new_shape));
      infer = int64_t(i);
    } else {
      DDPM_CHECK(s[i] >= 0, "reshape", "negative dimension in ", shape_str(new_shape));
      known *= s[i];
    }
  }
  if (infer >= 0) {
    DDPM_CHECK(known > 0 && numel() % known == 0, "reshape", "cannot reshape ", desc(), " to ", shape_str(new_shape));
    s[size_t(infer)] = numel() / known;
  }
  DDPM_CHECK(shape_numel(s) == numel(), "reshape", "cannot reshape ", desc(), " to ", shape_str(new_shape));
  Tensor out = detach();
  out.impl_->shape = s;
  Shape old = shape();
  return record(out, "reshape", {*this}, [old](const Tensor& g) { return std::vector<Tensor>{g.reshape(old)}; });
}

Tensor Tensor::slice0(int64_t begin, int64_t end) const {
  DDPM_CHECK(dim() >= 1 && begin >= 0 && begin <= end && end <= shape()[0], "slice0", "rows [", begin, ", ", end,
             ") out of range for ", desc());
  Tensor out = detach();
  out.impl_->shape[0] = end - begin;
  out.impl_->offset += begin * (numel() / std::max<int64_t>(shape()[0], 1));
  return out;
}

bool Tensor::requires_grad() const { return defined() && impl_->requires_grad; }

Tensor& Tensor::set_requires_grad(bool on) {
  DDPM_CHECK(!on || dtype() == DType::F32 || dtype() == DType::BF16, "set_requires_grad",
             "only floating tensors can require grad, got ", desc());
  impl_->requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const { return impl_->grad; }
void Tensor::set_grad(const Tensor& g) { impl_->grad = g; }
void Tensor::zero_grad() { impl_->grad = Tensor(); }
const std::shared_ptr<Node>& Tensor::grad_fn() const { return impl_->grad_fn; }

}  // namespace ddpm
