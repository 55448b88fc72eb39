// Module: a named tree of parameters, for checkpoints and optimizers. A module registers its
// parameters and child modules under names; named_parameters() yields dotted paths in
// registration order (e.g. "down1.maxpool_conv.1.double_conv.0.weight"), which are the names
// checkpoints use.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.hpp"

namespace ddpm {

class Module {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  std::vector<Tensor> parameters() const;
  int64_t parameter_count() const;
  // Moves every parameter to `device` in place: handles held elsewhere see the move.
  void to(Device device);
  void zero_grad();

 protected:
  // Registers t (a leaf that then requires grad) and returns the handle to keep as a member.
  Tensor register_parameter(const std::string& name, Tensor t);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    children_.emplace_back(name, m);
    return m;
  }

 private:
  void collect(const std::string& prefix, std::vector<std::pair<std::string, Tensor>>& out) const;
  std::vector<std::pair<std::string, Tensor>> params_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

}  // namespace ddpm
