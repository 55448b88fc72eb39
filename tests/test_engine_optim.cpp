// AdamW and EMA against the published update rules, evaluated in double in the test.
#include <cmath>

#include "bf16_training.hpp"
#include "engine/optim.hpp"
#include "helpers.hpp"

using namespace ddpm;
using namespace ddpm::test;

namespace {

// One parameter's state in double, updated by torch.optim.AdamW's documented rule.
struct RefAdamW {
  std::vector<double> p, m, v;
  void step(const std::vector<float>& g, const AdamWConfig& c, int t) {
    const double lr = c.lr, b1 = c.beta1, b2 = c.beta2;
    for (size_t i = 0; i < p.size(); ++i) {
      p[i] -= lr * c.weight_decay * p[i];
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * double(g[i]) * g[i];
      double m_hat = m[i] / (1 - std::pow(b1, t)), v_hat = v[i] / (1 - std::pow(b2, t));
      p[i] -= lr * m_hat / (std::sqrt(v_hat) + c.eps);
    }
  }
};

// All tensors' elements in one vector. Errors are measured over the whole list: a tensor of one
// element can cancel to near zero, and its relative error alone would then measure only f32
// rounding of the terms.
std::vector<float> cat(const std::vector<Tensor>& ts, size_t count) {
  std::vector<float> out;
  for (size_t k = 0; k < count; ++k)
    for (float x : ts[k].to_floats()) out.push_back(x);
  return out;
}
std::vector<float> cat(const std::vector<std::vector<double>>& xs) {
  std::vector<float> out;
  for (const auto& x : xs) out.insert(out.end(), x.begin(), x.end());
  return out;
}

}  // namespace

TEST_CASE("AdamW follows PyTorch's update rule for steps 1..5", "[optim]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  // A large lr and weight decay so every term of the rule moves the result well past f32 rounding.
  AdamWConfig cfg{0.02f, 0.9f, 0.999f, 1e-8f, 0.1f};
  std::vector<Shape> shapes{{1}, {7}, {3, 5}, {4, 3, 3, 2}};
  std::vector<Tensor> params;
  std::vector<RefAdamW> ref;
  for (const Shape& s : shapes) {
    params.push_back(randn(s, gen).set_requires_grad(true));
    std::vector<float> p0 = params.back().to_floats();
    ref.push_back({std::vector<double>(p0.begin(), p0.end()), std::vector<double>(p0.size(), 0.0),
                   std::vector<double>(p0.size(), 0.0)});
  }
  Tensor frozen = randn({6}, gen).set_requires_grad(true);  // never gets a grad
  std::vector<float> frozen0 = frozen.to_floats();
  params.push_back(frozen);

  AdamW opt(params, cfg);
  for (int t = 1; t <= 5; ++t) {
    CAPTURE(t);
    for (size_t k = 0; k < shapes.size(); ++k) {
      // Fresh gradients each step, of varied scale, so m and v differ from g and g^2.
      Tensor g = randn(shapes[k], gen, 0.1f * float(t));
      params[k].set_grad(g);
      ref[k].step(g.to_floats(), cfg, t);
    }
    opt.step();
    CHECK(opt.steps() == t);
    std::vector<std::vector<double>> rp, rm, rv;
    for (const RefAdamW& r : ref) {
      rp.push_back(r.p);
      rm.push_back(r.m);
      rv.push_back(r.v);
    }
    const size_t n = shapes.size();
    CHECK(rel_err(cat(params, n), cat(rp)) < 1e-6);
    CHECK(rel_err(cat(opt.exp_avg(), n), cat(rm)) < 1e-6);
    CHECK(rel_err(cat(opt.exp_avg_sq(), n), cat(rv)) < 1e-6);
    CHECK(frozen.to_floats() == frozen0);  // skipped, not decayed
    CHECK(opt.exp_avg().back().to_floats() == std::vector<float>(6, 0.0f));
  }
  opt.zero_grad();
  for (const Tensor& p : params) CHECK(!p.grad().defined());
  opt.step();  // no grads anywhere: nothing happens
  CHECK(opt.steps() == 5);
}

TEST_CASE("AdamW state round-trips through load_state", "[optim]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  AdamWConfig cfg{0.01f, 0.8f, 0.99f, 1e-6f, 0.05f};
  std::vector<Tensor> a{randn({5, 3}, gen), randn({11}, gen)};
  std::vector<Tensor> b{a[0].clone(), a[1].clone()};
  AdamW first(a, cfg);
  for (int t = 0; t < 3; ++t) {
    for (Tensor& p : a) p.set_grad(randn(p.shape(), gen));
    first.step();
  }
  // A second optimizer on a copy of the parameters, given the first one's state, steps identically.
  for (size_t i = 0; i < a.size(); ++i) b[i].copy_from(a[i]);
  AdamW second(b, cfg);
  second.load_state(first.exp_avg(), first.exp_avg_sq(), first.steps());
  CHECK(second.steps() == 3);
  for (size_t i = 0; i < a.size(); ++i) {
    Tensor g = randn(a[i].shape(), gen);
    a[i].set_grad(g);
    b[i].set_grad(g);
  }
  first.step();
  second.step();
  for (size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i].to_floats() == b[i].to_floats());
    CHECK(first.exp_avg()[i].to_floats() == second.exp_avg()[i].to_floats());
    CHECK(first.exp_avg_sq()[i].to_floats() == second.exp_avg_sq()[i].to_floats());
  }
}

TEST_CASE("AdamW with bf16 weight copies steps as casting every weight every step does, bit for bit",
          "[optim][bf16]") {
  const uint64_t seed = fresh_seed();
  CAPTURE(seed);
  for (int steps = 1; steps <= 4; ++steps) {
    CAPTURE(steps);
    Bf16Run plain = train_bf16_linear(seed, Device::CPU, false, steps);
    Bf16Run copied = train_bf16_linear(seed, Device::CPU, true, steps);
    AdamW& b = *copied.opt;
    for (size_t k = 0; k < plain.params.size(); ++k) {
      CAPTURE(k);
      CHECK(copied.params[k].to_floats() == plain.params[k].to_floats());
      CHECK(b.exp_avg()[k].to_floats() == plain.opt->exp_avg()[k].to_floats());
      CHECK(b.exp_avg_sq()[k].to_floats() == plain.opt->exp_avg_sq()[k].to_floats());
    }
    // The copies follow the weights; the f32 one has none; the weights did move.
    CHECK(b.weight_copies().find(copied.params[0]).to_floats() == copied.params[0].to(DType::BF16).to_floats());
    CHECK(b.weight_copies().find(copied.params[1]).to_floats() == copied.params[1].to(DType::BF16).to_floats());
    CHECK_FALSE(b.weight_copies().find(copied.params[2]).defined());
    CHECK(copied.params[0].to_floats() != train_bf16_linear(seed, Device::CPU, true, 0).params[0].to_floats());
  }

  // A parameter with gradients on itself and on its copy gets their sum; load_state makes the copies
  // again from the weights it is given with; zero_grad clears the copies' gradients.
  Generator gen(seed + 1);
  Bf16Run run = train_bf16_linear(seed, Device::CPU, true, 2);
  AdamW& b = *run.opt;
  Tensor& w = run.params[0];
  Tensor g = randn({6, 9}, gen), g_low = randn({6, 9}, gen).to(DType::BF16);
  Tensor p_ref = w.detach().clone().set_requires_grad(true);
  AdamW ref({p_ref}, b.config());
  ref.load_state({b.exp_avg()[0]}, {b.exp_avg_sq()[0]}, b.steps());
  p_ref.set_grad(add(g, g_low.to(DType::F32)));
  ref.step();
  w.set_grad(g);
  b.weight_copies().find(w).set_grad(g_low);
  b.step();
  CHECK(w.to_floats() == p_ref.to_floats());
  b.zero_grad();
  CHECK_FALSE(b.weight_copies().find(w).grad().defined());
  w.detach().copy_from(randn({6, 9}, gen));
  std::vector<Tensor> m, v;
  for (size_t k = 0; k < run.params.size(); ++k) {
    m.push_back(b.exp_avg()[k].clone());
    v.push_back(b.exp_avg_sq()[k].clone());
  }
  b.load_state(m, v, b.steps());
  CHECK(b.weight_copies().find(w).to_floats() == w.to(DType::BF16).to_floats());
}

TEST_CASE("AdamW rejects bad parameters, grads and state", "[optim][errors]") {
  Generator gen = fresh_generator();
  CHECK_THROWS_AS(AdamW({}), Error);
  CHECK_THROWS_AS(AdamW({Tensor()}), Error);
  CHECK_THROWS_AS(AdamW({Tensor::zeros({3}, DType::I64)}), Error);
  Tensor p = randn({2, 3}, gen);
  AdamW opt({p});
  p.set_grad(randn({3, 2}, gen));
  CHECK_THROWS_WITH(opt.step(), Catch::Contains("AdamW") && Catch::Contains("[3, 2]") && Catch::Contains("[2, 3]"));
  CHECK_THROWS_AS(opt.load_state({randn({2, 3}, gen)}, {randn({3}, gen)}, 1), Error);
  CHECK_THROWS_AS(opt.load_state({randn({2, 3}, gen)}, {}, 1), Error);
  CHECK_THROWS_AS(opt.load_state({randn({2, 3}, gen)}, {randn({2, 3}, gen)}, -1), Error);
}

TEST_CASE("EMA copies before start_step and interpolates after", "[optim][ema]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  const float decay = 0.9f;
  std::vector<Tensor> params{randn({3, 4}, gen), randn({1}, gen), randn({2, 3, 3, 5}, gen)};
  EMA ema(params, decay, 2);
  std::vector<std::vector<double>> ref;
  for (int step = 0; step < 5; ++step) {
    CAPTURE(step);
    for (Tensor& p : params) p.copy_from(randn(p.shape(), gen));
    ema.update(params, step);
    ref.resize(params.size());
    for (size_t k = 0; k < params.size(); ++k) {
      std::vector<float> pv = params[k].to_floats();
      if (step < 2) {
        CHECK(ema.shadow()[k].to_floats() == pv);  // warm-up: an exact copy
        ref[k].assign(pv.begin(), pv.end());
      } else {
        for (size_t i = 0; i < pv.size(); ++i) ref[k][i] = decay * ref[k][i] + (1.0 - decay) * pv[i];
      }
    }
    CHECK(rel_err(cat(ema.shadow(), params.size()), cat(ref)) < 1e-6);
  }
  // The shadow is a copy: it never aliases the parameters.
  CHECK(!ema.shadow()[0].same(params[0]));
  CHECK(ema.shadow()[0].raw() != params[0].raw());

  std::vector<Tensor> saved;
  for (const Tensor& s : ema.shadow()) saved.push_back(s.clone());
  EMA other(params, decay, 0);
  other.load_state(saved);
  for (size_t k = 0; k < params.size(); ++k) CHECK(other.shadow()[k].to_floats() == saved[k].to_floats());
  CHECK_THROWS_AS(other.load_state({saved[0]}), Error);
  CHECK_THROWS_AS(ema.update({params[0], params[1]}, 9), Error);
  CHECK_THROWS_AS(ema.update({params[1], params[0], params[2]}, 9), Error);  // shapes swapped
  CHECK_THROWS_AS(EMA(params, 1.5f), Error);
}
