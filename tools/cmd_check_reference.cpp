// `ddpm check-reference FILE...`: one training step against ddpm-reference files (float64 PyTorch
// runs of the seed model, see model/reference.hpp). Prints every comparison; exits non-zero when
// any exceeds its tolerance.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "model/reference.hpp"
#include "tools/cli_common.hpp"
#include "tools/commands.hpp"

namespace ddpm::cli {

void add_check_reference(CLI::App& app) {
  struct Opts {
    std::vector<std::string> files;
    std::string device = "cpu";
    DType precision = DType::F32;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("check-reference",
                                     "Run one training step on ddpm-reference files and compare with PyTorch's");
  cmd->add_option("files", o->files, "ddpm-reference v1 safetensors files")->required()->check(CLI::ExistingFile);
  cmd->add_option("--device", o->device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}))->capture_default_str();
  cmd->add_option("--precision", o->precision, "f32, or bf16 (mixed precision, with bf16's tolerances)")
      ->transform(named(precision_names()))
      ->default_str("f32");
  cmd->callback([o] {
    const Device device = parse_device(o->device);
    int64_t failed = 0, rows = 0;
    for (const std::string& path : o->files) {
      ReferenceReport r = check_reference(path, device, o->precision);
      std::printf("%s: batch %lld, %lldx%lld, in %lld, base %lld, time_dim %lld, classes %lld, heads %lld (%s)\n",
                  path.c_str(), (long long)r.batch, (long long)r.image_size, (long long)r.image_size,
                  (long long)r.config.in_channels, (long long)r.config.base_channels, (long long)r.config.time_dim,
                  (long long)r.config.num_classes, (long long)r.config.heads,
                  (o->device + ", " + dtype_name(o->precision)).c_str());
      std::printf("  %-52s %11s %9s  %s\n", "tensor", "rel err", "tolerance", "ok");
      for (const ReferenceRow& row : r.rows)
        std::printf("  %-52s %11.3e %9.0e  %s%s\n", row.name.c_str(), row.rel_err, row.tolerance,
                    row.ok() ? "ok" : "FAIL", row.floored ? " (|ref| < 1e-6: absolute error)" : "");
      std::printf("  %lld of %zu comparisons failed\n", (long long)r.failures(), r.rows.size());
      failed += r.failures();
      rows += int64_t(r.rows.size());
    }
    DDPM_CHECK(failed == 0, "check-reference", failed, " of ", rows, " comparisons exceed their tolerance");
    std::printf("all %lld comparisons within tolerance\n", (long long)rows);
  });
}

}  // namespace ddpm::cli
