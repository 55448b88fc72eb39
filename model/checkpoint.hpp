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

// The layout boundary: NCHW <-> NHWC (equally OIHW <-> OHWI), host copies of any 4-d tensor.
Tensor nchw_to_nhwc(const Tensor& x);
Tensor nhwc_to_nchw(const Tensor& x);

// {format = ddpm-checkpoint, in_channels, out_channels, base_channels, time_dim, num_classes, heads}.
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

// A model file's metadata: the config's keys, then `extra` (where both have a key, the config wins).
std::map<std::string, std::string> model_metadata(const UNetConfig& config, std::map<std::string, std::string> extra);
void save_model(const std::string& path, const UNet& model, std::map<std::string, std::string> extra_metadata = {});
// Reads a ddpm-checkpoint file, or a bare PyTorch state_dict (no "format" metadata: the widths
// are read off the weights' shapes, heads = 4). Every parameter must be present with its shape;
// any other tensor must be a prefixed copy of a parameter ("ema.inc.double_conv.0.weight"), so a
// file for another architecture fails with a message naming the tensor.
std::unique_ptr<UNet> load_model(const std::string& path, Device device);

}  // namespace ddpm
