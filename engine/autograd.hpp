// Reverse-mode autograd with a dynamic tape.
//
// Every differentiable op that sees an input requiring grad records a Node: the inputs and a
// backward closure mapping d loss / d output to d loss / d input (one per input; an undefined
// Tensor for inputs without grad). Tensor::backward() walks the nodes in reverse topological
// order, accumulates gradients (a tensor used twice gets the sum), adds leaf gradients into
// Tensor::grad(), and frees each closure as soon as it has run, which releases the activations
// it saved. A graph can therefore be walked once; a second walk throws.
//
// Closures must capture detached tensors (Tensor::detach()) for anything they save, never the
// op's own output handle, or the output would keep itself alive through its node.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "engine/tensor.hpp"

namespace ddpm {

using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_out)>;

struct Node {
  std::string op;
  std::vector<Tensor> inputs;
  BackwardFn backward;  // empty once run (saved activations released)
};

// Grad mode: off inside a NoGradGuard's scope, where ops record nothing.
bool grad_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// True when an op on these inputs must record a node.
bool needs_grad(std::initializer_list<const Tensor*> inputs);

// Attaches a node to `out` when any input requires grad (and grad mode is on); returns out.
Tensor record(Tensor out, const char* op, std::vector<Tensor> inputs, BackwardFn backward);

// out += src, elementwise, same shape; the in-place accumulate used by backward and optimizers.
void accumulate(Tensor& out, const Tensor& src);

}  // namespace ddpm
