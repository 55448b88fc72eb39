// Parameter initialisers, PyTorch's defaults, shared by the U-Net's blocks and the classifier.
#pragma once
#include "engine/rng.hpp"
#include "engine/tensor.hpp"

namespace ddpm {

// U(-bound, bound) from the generator's uniform [0, 1) draws (f32, CPU).
Tensor uniform(const Shape& shape, double bound, Generator& gen);

// PyTorch's default for conv and linear layers (kaiming_uniform with a = sqrt(5)) reduces to
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)), for the bias too.
Tensor fan_in_uniform(const Shape& shape, int64_t fan_in, Generator& gen);

}  // namespace ddpm
