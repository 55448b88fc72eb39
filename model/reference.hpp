// The reference-file check: runs one training step of our U-Net on the inputs of a ddpm-reference
// v1 file (a float64 PyTorch run of the seed model, ../shared/docs/seed-model.md) and compares
// every result with it.
//
// Steps: weights from the file (PyTorch layout -> ours); x_t NCHW -> NHWC; forward; MSE against
// eps; backward; one AdamW step with the file's adamw_* settings, applied to the reference's
// gradients (Adam would turn float32 noise on an exactly-zero gradient into a step of size lr;
// our own gradients are compared separately). Compared, all in PyTorch layout:
// eps_pred and loss (tolerance 1e-4), every grad.<name> and adamw.<name> (1e-3), each by the
// relative error ||ours - ref|| / max(||ref||, floor); for adamw.<name> of the step (new weight
// minus the file's weight), which a weight-relative error would hide. The floor (1e-6) keeps a
// reference whose norm is ~0 from dividing by zero; rows where it applied are marked `floored`.
#pragma once
#include <string>
#include <vector>

#include "model/safetensors.hpp"
#include "model/unet.hpp"

namespace ddpm {

struct ReferenceRow {
  std::string name;  // "eps_pred", "loss", "grad.<param>", "adamw.<param>"
  double rel_err;
  double tolerance;
  bool floored;      // ||ref|| was below the floor, which was used instead
  bool ok() const { return rel_err <= tolerance; }
};

struct ReferenceReport {
  std::string path;
  UNetConfig config;
  int64_t batch = 0, image_size = 0;
  std::vector<ReferenceRow> rows;
  bool ok() const;
  int64_t failures() const;
};

inline constexpr double kRefOutputTol = 1e-4;  // eps_pred, loss
inline constexpr double kRefGradTol = 1e-3;    // grad.*, adamw.*
inline constexpr double kRefNormFloor = 1e-6;
// bf16 (mixed precision): eps_pred and loss, and all gradients as one vector. Measured on the
// CPU on the four files of tests/data: eps_pred 1.1-1.4%, loss <= 0.2%, gradients 1.9-6.4%.
inline constexpr double kRefOutputTolBF16 = 3e-2;
inline constexpr double kRefGradAllTolBF16 = 1.5e-1;

// With compute = BF16 the U-Net runs in mixed precision (UNet::set_compute_dtype) with bf16's
// tolerances, and the gradients are judged together (one extra row; the per-tensor rows are then
// printed with an infinite tolerance); the AdamW rows are unchanged (the optimizer is f32).
ReferenceReport check_reference(const std::string& path, Device device, DType compute = DType::F32);
// The same on a file already in memory (tests tamper with a weight here to see the check fail).
ReferenceReport check_reference(const SafeTensors& file, Device device, DType compute = DType::F32);

}  // namespace ddpm
