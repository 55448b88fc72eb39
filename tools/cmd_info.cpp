// `ddpm info`: parameters per top-level module and forward FLOPs per image of a U-Net config (or
// of a checkpoint's), by the napkin math of model/info.hpp.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "diffusion/trainer.hpp"
#include "model/checkpoint.hpp"
#include "model/info.hpp"
#include "tools/cli_common.hpp"
#include "tools/commands.hpp"

namespace ddpm::cli {

void add_info(CLI::App& app) {
  struct Opts {
    UNetConfig config;
    int64_t image_size = 64;
    std::string checkpoint;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("info", "Parameters and forward FLOPs per module of the U-Net");
  cmd->add_option("--image-size", o->image_size, "image side (a multiple of 8; default: the checkpoint's, else 64)")
      ->capture_default_str();
  CLI::Option* checkpoint = cmd->add_option("--checkpoint", o->checkpoint,
                                            "take the config (and image size) from this model file or training folder");
  // The config flags describe a model of their own: with a checkpoint they would be ignored.
  cmd->add_option("--in-channels", o->config.in_channels)->capture_default_str()->excludes(checkpoint);
  cmd->add_option("--out-channels", o->config.out_channels)->capture_default_str()->excludes(checkpoint);
  cmd->add_option("--base-channels", o->config.base_channels)->capture_default_str()->excludes(checkpoint);
  cmd->add_option("--time-dim", o->config.time_dim)->capture_default_str()->excludes(checkpoint);
  cmd->add_option("--num-classes", o->config.num_classes, "0 = unconditional")
      ->capture_default_str()
      ->excludes(checkpoint);
  cmd->add_option("--heads", o->config.heads)->capture_default_str()->excludes(checkpoint);
  cmd->callback([o, cmd] {
    std::unique_ptr<UNet> model;
    if (!o->checkpoint.empty()) {
      const std::string path = model_file(o->checkpoint);
      model = load_model(path, Device::CPU);
      // What training wrote beside the config (step, data, image size, schedule, T, class names).
      const auto meta = load_safetensors(path).metadata;
      const auto config_keys = config_metadata(model->config());
      std::printf("checkpoint %s\n", path.c_str());
      for (const auto& [key, value] : meta)
        if (!config_keys.count(key)) std::printf("  %s: %s\n", key.c_str(), value.c_str());
      if (!cmd->count("--image-size") && meta.count("image_size")) o->image_size = metadata_int(meta, "image_size", path);
    } else {
      Generator gen(0);
      model = std::make_unique<UNet>(o->config, gen);
    }
    const UNetConfig& c = model->config();
    std::vector<ModuleCost> costs = model_costs(*model, o->image_size);  // checks the size first
    std::printf("U-Net: in %lld, out %lld, base %lld, time_dim %lld, classes %lld, heads %lld; %lldx%lld images\n",
                (long long)c.in_channels, (long long)c.out_channels, (long long)c.base_channels,
                (long long)c.time_dim, (long long)c.num_classes, (long long)c.heads, (long long)o->image_size,
                (long long)o->image_size);
    std::printf("%-10s %12s %12s %12s %12s %12s\n", "module", "params", "conv GF", "linear GF", "attn GF", "total GF");
    ModuleCost total{"total"};
    for (const ModuleCost& m : costs) {
      std::printf("%-10s %12lld %12.4f %12.4f %12.4f %12.4f\n", m.name.c_str(), (long long)m.params,
                  m.conv_flops / 1e9, m.linear_flops / 1e9, m.attention_flops / 1e9, m.flops() / 1e9);
      total.params += m.params;
      total.conv_flops += m.conv_flops;
      total.linear_flops += m.linear_flops;
      total.attention_flops += m.attention_flops;
    }
    std::printf("%-10s %12lld %12.4f %12.4f %12.4f %12.4f\n", "total", (long long)total.params,
                total.conv_flops / 1e9, total.linear_flops / 1e9, total.attention_flops / 1e9, total.flops() / 1e9);
    std::printf("forward %.2f GFLOP per image (multiply-adds x2); a training step ~3x: %.2f GFLOP per image\n",
                total.flops() / 1e9, 3 * total.flops() / 1e9);
  });
}

}  // namespace ddpm::cli
