#include "engine/autograd.hpp"

#include <unordered_map>
#include <unordered_set>

#include "engine/dispatch.hpp"
#include "kernels/elementwise.hpp"

namespace ddpm {
namespace {
thread_local bool g_grad_enabled = true;
}

bool grad_enabled() { return g_grad_enabled; }
NoGradGuard::NoGradGuard() : previous_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = previous_; }

bool needs_grad(std::initializer_list<const Tensor*> inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t && t->requires_grad()) return true;
  return false;
}

Tensor record(Tensor out, const char* op, std::vector<Tensor> inputs, BackwardFn backward) {
  if (!g_grad_enabled) return out;
  bool any = false;
  for (const Tensor& t : inputs) any = any || t.requires_grad();
  if (!any) return out;
  auto node = std::make_shared<Node>();
  node->op = op;
  node->inputs = std::move(inputs);
  node->backward = std::move(backward);
  out.impl()->grad_fn = node;
  out.impl()->requires_grad = true;
  return out;
}

void accumulate(Tensor& out, const Tensor& src) {
  DDPM_CHECK(out.shape() == src.shape() && out.device() == src.device() && out.dtype() == src.dtype(), "accumulate",
             "cannot add ", src.desc(), " into ", out.desc());
  DDPM_CHECK(out.dtype() == DType::F32 || out.dtype() == DType::BF16, "accumulate", "gradients are f32 or bf16, got ",
             out.desc());
  with_float_type(out.dtype(), [&](auto t) {
    using T = decltype(t);
    DDPM_DISPATCH(out.device(), accumulate, out.data<T>(), src.data<T>(), out.numel());
  });
}

void Tensor::backward(const Tensor& grad) const {
  DDPM_CHECK(grad.defined() || numel() == 1, "backward", "needs a one-element tensor (a loss) or an explicit "
             "gradient, got ", desc());
  DDPM_CHECK(!grad.defined() || (grad.shape() == shape() && grad.device() == device() && grad.dtype() == dtype()),
             "backward", "gradient ", grad.desc(), " does not match ", desc());
  DDPM_CHECK(requires_grad(), "backward", "the tensor does not require grad: no input of it requires grad, or it was "
             "computed under NoGradGuard");
  Tensor seed = grad.defined() ? grad : Tensor::full(shape(), 1.0f, device()).to(dtype());
  if (!grad_fn()) {  // a leaf: its own gradient is 1
    if (this->grad().defined()) accumulate(impl()->grad, seed);
    else impl()->grad = seed.clone();
    return;
  }

  // Reverse topological order of the nodes reachable from this one (iterative DFS).
  // Shared pointers keep every node alive while inputs are cleared below.
  std::vector<std::shared_ptr<Node>> order;
  std::unordered_set<Node*> seen;
  std::vector<std::pair<std::shared_ptr<Node>, size_t>> stack{{grad_fn(), 0}};
  seen.insert(grad_fn().get());
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (next < node->inputs.size()) {
      std::shared_ptr<Node> child = node->inputs[next++].grad_fn();
      if (child && seen.insert(child.get()).second) stack.push_back({child, 0});
    } else {
      order.push_back(node);
      stack.pop_back();
    }
  }

  std::unordered_map<Node*, Tensor> grads;
  grads[grad_fn().get()] = seed;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* node = it->get();
    DDPM_CHECK(node->backward != nullptr, "backward", "the graph through '", node->op,
               "' was already walked once and its saved tensors released; run the forward again");
    auto found = grads.find(node);
    if (found == grads.end()) continue;  // no gradient flows into this node
    Tensor g = found->second;
    grads.erase(found);
    std::vector<Tensor> in_grads = node->backward(g);
    node->backward = nullptr;  // frees the saved activations
    DDPM_CHECK(in_grads.size() == node->inputs.size(), "backward", "op '", node->op, "' returned ", in_grads.size(),
               " gradients for ", node->inputs.size(), " inputs");
    for (size_t i = 0; i < in_grads.size(); ++i) {
      Tensor& input = node->inputs[i];
      const Tensor& gi = in_grads[i];
      if (!input.requires_grad() || !gi.defined()) continue;
      DDPM_CHECK(gi.shape() == input.shape(), "backward", "op '", node->op, "' gave gradient ", gi.desc(),
                 " for input ", input.desc());
      if (Node* child = input.grad_fn().get()) {
        auto slot = grads.find(child);
        if (slot == grads.end()) grads.emplace(child, gi);
        else {
          Tensor sum = slot->second.clone();  // never write into a tensor a closure may still hold
          accumulate(sum, gi);
          slot->second = sum;
        }
      } else if (input.grad().defined()) {
        accumulate(input.impl()->grad, gi);
      } else {
        input.set_grad(gi.clone());
      }
    }
    node->inputs.clear();
  }
}

}  // namespace ddpm
