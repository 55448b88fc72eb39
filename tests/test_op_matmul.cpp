// linear and bmm: forward against a naive triple loop in double, backward against finite
// differences, error paths.
#include "helpers.hpp"

using namespace ddpm;
using namespace ddpm::test;

namespace {

// c[i] = op(a[i]) op(b[i]) in double, for stored row-major a ([m, k], or [k, m] when ta) and
// b ([k, n], or [n, k] when tb).
std::vector<float> naive_bmm(const std::vector<float>& a, const std::vector<float>& b, int64_t batch, int64_t m,
                             int64_t n, int64_t k, bool ta, bool tb) {
  std::vector<float> c(size_t(batch * m * n));
  for (int64_t i = 0; i < batch; ++i)
    for (int64_t r = 0; r < m; ++r)
      for (int64_t col = 0; col < n; ++col) {
        double acc = 0;
        for (int64_t j = 0; j < k; ++j) {
          double av = a[size_t(i * m * k + (ta ? j * m + r : r * k + j))];
          double bv = b[size_t(i * k * n + (tb ? col * k + j : j * n + col))];
          acc += av * bv;
        }
        c[size_t((i * m + r) * n + col)] = float(acc);
      }
  return c;
}

}  // namespace

TEST_CASE("linear matches a naive product, 2-D and 4-D inputs, with and without bias", "[op][matmul]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  for (Shape xs : {Shape{1, 1}, Shape{7, 5}, Shape{37, 13}, Shape{2, 3, 2, 5}, Shape{1, 1, 1, 3}})
    for (int64_t out : {1, 3, 13})
      for (bool bias : {false, true}) {
        const int64_t in = xs.back(), rows = shape_numel(xs) / in;
        CAPTURE(shape_str(xs), out, bias);
        Tensor x = randn(xs, gen), w = randn({out, in}, gen), b = bias ? randn({out}, gen) : Tensor();
        std::vector<float> ref = naive_bmm(x.to_floats(), w.to_floats(), 1, rows, out, in, false, true);
        if (bias) {
          std::vector<float> bv = b.to_floats();
          for (size_t i = 0; i < ref.size(); ++i) ref[i] += bv[i % size_t(out)];
        }
        Tensor y = linear(x, w, b);
        Shape want = xs;
        want.back() = out;
        CHECK(y.shape() == want);
        // Error relative to the product of the magnitudes: a single output of a few terms can
        // cancel to near zero, where a plain relative error measures only float rounding.
        std::vector<float> xa = x.to_floats(), wa = w.to_floats();
        for (float& v : xa) v = std::abs(v);
        for (float& v : wa) v = std::abs(v);
        CHECK(diff_norm(y.to_floats(), ref) <= 1e-6 * norm(naive_bmm(xa, wa, 1, rows, out, in, false, true)));
      }
}

TEST_CASE("linear adds a residual in the same pass", "[op][matmul]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  for (DType dtype : {DType::F32, DType::BF16})
    for (Shape xs : {Shape{7, 5}, Shape{2, 3, 4, 16}}) {
      CAPTURE(shape_str(xs), dtype == DType::BF16);
      const int64_t in = xs.back(), out = 6, rows = shape_numel(xs) / in;
      Tensor x = randn(xs, gen).to(dtype), w = randn({out, in}, gen).to(dtype), b = randn({out}, gen).to(dtype);
      Shape ys = xs;
      ys.back() = out;
      Tensor r = randn(ys, gen).to(dtype);
      // The reference in double from the same (rounded) values; bf16 rounds the output once.
      std::vector<float> ref = naive_bmm(x.to_floats(), w.to_floats(), 1, rows, out, in, false, true);
      const std::vector<float> bv = b.to_floats(), rv = r.to_floats();
      for (size_t i = 0; i < ref.size(); ++i) ref[i] += bv[i % size_t(out)] + rv[i];
      Tensor y = linear(x, w, b, r);
      CHECK(y.shape() == ys);
      CHECK(rel_err(y.to_floats(), ref) < (dtype == DType::BF16 ? 4e-3 : 1e-6));
    }
}

TEST_CASE("bmm matches a naive product for all four transpose combinations", "[op][matmul]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  const int64_t B = 3, M = 5, N = 4, K = 7;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      CAPTURE(ta, tb);
      Tensor a = randn(ta ? Shape{B, K, M} : Shape{B, M, K}, gen), b = randn(tb ? Shape{B, N, K} : Shape{B, K, N}, gen);
      Tensor c = bmm(a, b, ta, tb);
      CHECK(c.shape() == Shape{B, M, N});
      CHECK(rel_err(c, naive_bmm(a.to_floats(), b.to_floats(), B, M, N, K, ta, tb)) < 1e-6);
    }
  // Products above the CPU kernel's threading threshold (1 MFLOP), one matrix (split along the
  // longer output side, rows then columns) and several (one per thread).
  for (Shape bmnk : {Shape{1, 70, 40, 200}, Shape{1, 40, 70, 200}, Shape{3, 33, 35, 170}})
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        const int64_t Bb = bmnk[0], m = bmnk[1], n = bmnk[2], k = bmnk[3];
        CAPTURE(shape_str(bmnk), ta, tb);
        Tensor a = randn(ta ? Shape{Bb, k, m} : Shape{Bb, m, k}, gen), b = randn(tb ? Shape{Bb, n, k} : Shape{Bb, k, n}, gen);
        CHECK(rel_err(bmm(a, b, ta, tb), naive_bmm(a.to_floats(), b.to_floats(), Bb, m, n, k, ta, tb)) < 1e-6);
      }
  // Batch 1 and 1x1 matrices.
  Tensor a = randn({1, 1, 1}, gen), b = randn({1, 1, 1}, gen);
  CHECK(rel_err(bmm(a, b), naive_bmm(a.to_floats(), b.to_floats(), 1, 1, 1, 1, false, false)) < 1e-6);
}

TEST_CASE("linear gradients match finite differences", "[op][matmul][grad]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  auto with_bias = [](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); };
  auto no_bias = [](const std::vector<Tensor>& in) { return linear(in[0], in[1]); };
  check_gradients(with_bias, {randn({4, 5}, gen), randn({3, 5}, gen), randn({3}, gen)}, gen);
  check_gradients(with_bias, {randn({2, 2, 3, 5}, gen), randn({7, 5}, gen), randn({7}, gen)}, gen);
  check_gradients(no_bias, {randn({3, 1, 1, 6}, gen), randn({2, 6}, gen)}, gen);
  auto with_residual = [](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2], in[3]); };
  check_gradients(with_residual, {randn({2, 3, 5}, gen), randn({4, 5}, gen), randn({4}, gen), randn({2, 3, 4}, gen)},
                  gen);
}

TEST_CASE("the bias gradient is the column sum of the output gradient, over many row slices", "[op][matmul][grad]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  // 5000 rows: 4 slices, the last ragged (kernels/matmul.hpp, bias_grad_splits); 3000: 2 slices.
  for (Shape xs : {Shape{5000, 3}, Shape{2, 1500, 4}}) {
    const int64_t in = xs.back(), rows = shape_numel(xs) / in, out = 7;
    CAPTURE(shape_str(xs));
    Tensor x = randn(xs, gen), w = randn({out, in}, gen), b = randn({out}, gen);
    b.set_requires_grad(true);
    Shape ys = xs;
    ys.back() = out;
    Tensor g = randn(ys, gen);
    linear(x, w, b).backward(g);
    std::vector<float> gv = g.to_floats(), ref(static_cast<size_t>(out));
    for (int64_t c = 0; c < out; ++c) {
      double acc = 0;
      for (int64_t r = 0; r < rows; ++r) acc += gv[size_t(r * out + c)];
      ref[size_t(c)] = float(acc);
    }
    CHECK(rel_err(b.grad(), ref) < 1e-6);
  }
}

TEST_CASE("bmm gradients match finite differences for all transpose combinations", "[op][matmul][grad]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  const int64_t B = 2, M = 3, N = 5, K = 4;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      CAPTURE(ta, tb);
      check_gradients([ta, tb](const std::vector<Tensor>& in) { return bmm(in[0], in[1], ta, tb); },
                      {randn(ta ? Shape{B, K, M} : Shape{B, M, K}, gen), randn(tb ? Shape{B, N, K} : Shape{B, K, N}, gen)},
                      gen);
    }
}

TEST_CASE("linear and bmm give the same gradient when only some inputs require grad", "[op][matmul][grad]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  Tensor x = randn({6, 5}, gen), w = randn({3, 5}, gen), b = randn({3}, gen), g = randn({6, 3}, gen);
  // Reference: everything requires grad.
  Tensor xa = x.clone().set_requires_grad(), wa = w.clone().set_requires_grad(), ba = b.clone().set_requires_grad();
  linear(xa, wa, ba).backward(g);
  // Only x (frozen weights), then only the bias.
  Tensor xb = x.clone().set_requires_grad();
  linear(xb, w, b).backward(g);
  CHECK(rel_err(xb.grad(), xa.grad()) == 0);
  Tensor bc = b.clone().set_requires_grad();
  linear(x, w, bc).backward(g);
  CHECK(rel_err(bc.grad(), ba.grad()) == 0);
  CHECK_FALSE(w.grad().defined());

  Tensor p = randn({2, 3, 4}, gen), q = randn({2, 4, 5}, gen), gc = randn({2, 3, 5}, gen);
  Tensor pa = p.clone().set_requires_grad(), qa = q.clone().set_requires_grad();
  bmm(pa, qa).backward(gc);
  Tensor qb = q.clone().set_requires_grad();
  bmm(p, qb).backward(gc);
  CHECK(rel_err(qb.grad(), qa.grad()) == 0);
}

TEST_CASE("linear and bmm reject bad input", "[op][matmul][errors]") {
  Generator gen = fresh_generator();
  Tensor x = randn({4, 5}, gen), w = randn({3, 5}, gen);
  CHECK_NOTHROW(linear(x, w));
  CHECK_THROWS_WITH(linear(randn({4, 6}, gen), w),
                    Catch::Contains("linear") && Catch::Contains("[4, 6]") && Catch::Contains("[3, 5]"));
  CHECK_THROWS_AS(linear(x, randn({15}, gen)), Error);                    // w not 2-D
  CHECK_THROWS_AS(linear(x, randn({1, 3, 5}, gen)), Error);               // w not 2-D
  CHECK_THROWS_WITH(linear(x, w, randn({4}, gen)), Catch::Contains("[4]"));  // b wrong size
  CHECK_THROWS_AS(linear(x, w, randn({1, 3}, gen)), Error);               // b not 1-D
  CHECK_THROWS_AS(linear(Tensor::zeros({4, 5}, DType::I64), w), Error);   // non-f32
  CHECK_THROWS_AS(linear(x, w.to(DType::BF16)), Error);
  CHECK_THROWS_AS(linear(Tensor::zeros({0, 5}), w), Error);               // empty
  CHECK_THROWS_AS(linear(Tensor::full({}, 1.0f), randn({3, 1}, gen)), Error);  // 0-dim x
  CHECK_THROWS_AS(linear(Tensor(), w), Error);
  CHECK_THROWS_WITH(linear(x, w, randn({3}, gen), randn({4, 4}, gen)),
                    Catch::Contains("residual") && Catch::Contains("[4, 3]"));  // residual not the output's shape
  CHECK_THROWS_AS(linear(x, w, Tensor(), randn({4, 3}, gen)), Error);          // residual without a bias
  CHECK_THROWS_AS(linear(x, w, randn({3}, gen), randn({4, 3}, gen).to(DType::BF16)), Error);

  Tensor a = randn({2, 3, 4}, gen), b = randn({2, 4, 5}, gen);
  CHECK_NOTHROW(bmm(a, b));
  CHECK_THROWS_WITH(bmm(a, b, true), Catch::Contains("bmm") && Catch::Contains("[2, 3, 4]"));  // K mismatch
  CHECK_THROWS_AS(bmm(a, b, false, true), Error);
  CHECK_THROWS_AS(bmm(a, randn({3, 4, 5}, gen)), Error);  // batch mismatch
  CHECK_THROWS_AS(bmm(randn({3, 4}, gen), randn({4, 5}, gen)), Error);  // not 3-D
  CHECK_THROWS_AS(bmm(a, Tensor::zeros({2, 4, 0})), Error);            // empty
  CHECK_THROWS_AS(bmm(a, b.to(DType::BF16)), Error);
}
