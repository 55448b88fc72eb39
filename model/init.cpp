#include "model/init.hpp"

#include <cmath>

namespace ddpm {

Tensor uniform(const Shape& shape, double bound, Generator& gen) {
  Tensor t = Tensor::rand(shape, gen);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = float((2.0 * p[i] - 1.0) * bound);
  return t;
}

Tensor fan_in_uniform(const Shape& shape, int64_t fan_in, Generator& gen) {
  return uniform(shape, 1.0 / std::sqrt(double(fan_in)), gen);
}

}  // namespace ddpm
