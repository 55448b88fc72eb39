// Model checkpoints in PyTorch's layout and names, so they open with
// safetensors.torch.load_file and a PyTorch-trained seed model's state_dict loads here.
// Conv weights are converted OIHW <-> OHWI at this boundary and nowhere else. The UNetConfig
// lives in the metadata (keys as in the ddpm-reference format).
#pragma once
#include <map>
#include <string>

#include "model/safetensors.hpp"
#include "model/unet.hpp"

namespace ddpm {

std::map<std::string, std::string> config_metadata(const UNetConfig& config);
UNetConfig config_from_metadata(const std::map<std::string, std::string>& metadata, const std::string& path);

// Named tensors in PyTorch layout (CPU copies) for a model's parameters or any list parallel to
// them (EMA weights, optimizer moments).
std::vector<std::pair<std::string, Tensor>> to_pytorch_layout(const UNet& model, const std::vector<Tensor>& values,
                                                              const std::string& prefix = "");
// Copies tensors named like the model's parameters (PyTorch layout) into `values` (engine
// layout, on each value's device); every name must be present with the right shape.
void from_pytorch_layout(const UNet& model, const SafeTensors& file, std::vector<Tensor>& values,
                         const std::string& prefix = "");

void save_model(const std::string& path, const UNet& model, std::map<std::string, std::string> extra_metadata = {});
std::unique_ptr<UNet> load_model(const std::string& path, Device device);

}  // namespace ddpm
