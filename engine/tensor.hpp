// Tensor: a shape, a dtype and a device over a shared, contiguous Storage, plus the autograd
// fields (requires_grad, the accumulated grad, the node that produced it).
//
// Conventions:
// - Row-major and always contiguous; a view (reshape, slice along dim 0) shares the Storage and
//   starts at an element offset.
// - Activations are NHWC: [batch, height, width, channels]. Attention tokens are then a free
//   reshape to [batch, H*W, C]. Conv weights are OHWI [out, kh, kw, in]; linear weights keep
//   PyTorch's [out, in]. Checkpoints convert from/to PyTorch layouts (NCHW, OIHW) at load/save.
// - Tensor is a handle: copying it copies a pointer (like torch.Tensor), not the data.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/dtype.hpp"
#include "engine/storage.hpp"

namespace ddpm {

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);

struct Node;
struct TensorImpl;
class Generator;

// No NaN or infinity among `values`.
bool all_finite(const std::vector<float>& values);

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // Creation. Contents of `empty` are unspecified.
  static Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
  static Tensor full(const Shape& shape, float value, Device device = Device::CPU);
  static Tensor from_floats(const std::vector<float>& values, const Shape& shape, Device device = Device::CPU);
  static Tensor from_ints(const std::vector<int64_t>& values, const Shape& shape, Device device = Device::CPU);
  static Tensor randn(const Shape& shape, Generator& gen, Device device = Device::CPU);
  static Tensor rand(const Shape& shape, Generator& gen, Device device = Device::CPU);  // uniform [0, 1)

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  int64_t dim() const { return int64_t(shape().size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const;
  DType dtype() const;
  Device device() const;
  std::string desc() const;  // "f32[2, 3] cpu", for messages

  // Raw element pointer; data<T>() checks that T matches the dtype.
  void* raw() const;
  template <class T> T* data() const {
    check_dtype(dtype_of<T>(), "data");
    return static_cast<T*>(raw());
  }

  // Copies and conversions (never tracked by autograd; see ops.hpp for the differentiable ones).
  Tensor to(Device device) const;
  Tensor to(DType dtype) const;
  Tensor clone() const;
  void copy_from(const Tensor& src);  // same shape and dtype, any devices
  std::vector<float> to_floats() const;  // f32/bf16 -> host floats
  bool all_finite() const;               // no NaN or infinity (f32/bf16; a host copy: not for hot loops)
  std::vector<int64_t> to_ints() const;  // i32/i64 -> host ints
  float item() const;

  // Views sharing this tensor's storage.
  Tensor reshape(const Shape& shape) const;       // differentiable
  Tensor slice0(int64_t begin, int64_t end) const;  // rows [begin, end) of dim 0; not differentiable
  Tensor detach() const;                          // same data, no autograd history
  // Points this tensor (and every handle to it) at src's data: same shape and dtype, any device.
  // Used to move parameters between devices in place.
  void set_data(const Tensor& src);

  // Autograd.
  bool requires_grad() const;
  Tensor& set_requires_grad(bool on = true);
  Tensor grad() const;  // undefined until a backward pass reaches this leaf
  void set_grad(const Tensor& g);
  void zero_grad();     // drops the accumulated grad
  // Runs the backward pass from this tensor. Without `grad` this must be a one-element tensor
  // (a loss) and the seed is 1; with it, `grad` is d loss / d this (same shape).
  void backward(const Tensor& grad = Tensor()) const;
  const std::shared_ptr<Node>& grad_fn() const;

  TensorImpl* impl() const { return impl_.get(); }
  bool same(const Tensor& o) const { return impl_ == o.impl_; }
  void check_dtype(DType want, const char* op) const;

 private:
  std::shared_ptr<TensorImpl> impl_;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements
  Shape shape;
  DType dtype = DType::F32;
  bool requires_grad = false;
  Tensor grad;
  std::shared_ptr<Node> grad_fn;
};

}  // namespace ddpm
