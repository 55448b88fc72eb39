// One training step of our U-Net against float64 PyTorch runs (tests/data/ref_*.safetensors,
// written by tools/make_reference.py, plus the project's shared reference file), and the check's
// own ability to fail: a tampered weight or input must be caught.
#include <filesystem>

#include "helpers.hpp"
#include "model/reference.hpp"

using namespace ddpm;
using Catch::Matchers::Contains;

namespace {

std::vector<std::string> reference_files() {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(DDPM_TEST_DATA)) {
    std::string name = e.path().filename().string();
    if (name.starts_with("ref_") && name.ends_with(".safetensors")) out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

const std::string kShared = std::string(DDPM_TEST_DATA) + "/ref_c1_16px_b4_cond.safetensors";

// A private copy of one tensor of the in-memory file, to edit (copies of a SafeTensors share
// their tensors).
Tensor& editable(SafeTensors& f, const std::string& name) {
  auto it = std::find_if(f.tensors.begin(), f.tensors.end(), [&](const auto& p) { return p.first == name; });
  REQUIRE(it != f.tensors.end());
  return it->second = it->second.clone();
}

}  // namespace

TEST_CASE("one training step matches PyTorch on every reference file", "[model][reference]") {
  std::vector<std::string> files = reference_files();
  REQUIRE(files.size() >= 4);
  for (const std::string& path : files) {
    CAPTURE(path);
    ReferenceReport r = check_reference(path, Device::CPU);
    Generator gen(0);
    size_t params = UNet(r.config, gen).named_parameters().size();
    CHECK(r.rows.size() == 2 + 2 * params);  // eps_pred, loss, then a grad. and an adamw. row each
    for (const ReferenceRow& row : r.rows) {
      INFO(row.name << ": relative error " << row.rel_err << ", tolerance " << row.tolerance);
      CHECK(row.ok());
      CHECK_FALSE(row.floored);
    }
  }
}

TEST_CASE("in bf16 mixed precision one training step matches PyTorch within bf16's tolerances",
          "[model][reference][bf16]") {
  for (const std::string& path : reference_files()) {
    CAPTURE(path);
    ReferenceReport r = check_reference(path, Device::CPU, DType::BF16);
    Generator gen(0);
    size_t params = UNet(r.config, gen).named_parameters().size();
    REQUIRE(r.rows.size() == 3 + 2 * params);  // plus "grad (all parameters together)"
    for (const ReferenceRow& row : r.rows) {
      INFO(row.name << ": relative error " << row.rel_err << ", tolerance " << row.tolerance);
      CHECK(row.ok());
    }
  }
  // Still able to fail: the output conv's weight half again as large.
  SafeTensors f = load_safetensors(kShared);
  Tensor& w = editable(f, "outc.weight");
  for (int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] *= 1.5f;
  CHECK_FALSE(check_reference(f, Device::CPU, DType::BF16).ok());
}

TEST_CASE("the reference check fails on a wrong model or wrong inputs", "[model][reference]") {
  SafeTensors clean = load_safetensors(kShared);
  auto failed = [](const ReferenceReport& r, const std::string& name) {
    for (const ReferenceRow& row : r.rows)
      if (row.name == name) return !row.ok();
    FAIL("no row " << name);
    return false;
  };
  SECTION("one of 768 attention weights moved by 0.05") {
    SafeTensors f = clean;
    editable(f, "sa3.mha.in_proj_weight").data<float>()[5] += 0.05f;
    ReferenceReport r = check_reference(f, Device::CPU);
    CHECK_FALSE(r.ok());
    CHECK(failed(r, "eps_pred"));
    CHECK(failed(r, "grad.sa3.mha.in_proj_weight"));
  }
  SECTION("an AdamW step without its weight decay") {
    SafeTensors f = clean;
    f.metadata["adamw_weight_decay"] = "0.0";  // the step then lacks lr * 0.01 * w
    ReferenceReport r = check_reference(f, Device::CPU);
    CHECK(failed(r, "adamw.inc.double_conv.1.weight"));  // a norm weight: |w| ~ 1
    for (const ReferenceRow& row : r.rows)
      if (!row.name.starts_with("adamw.")) CHECK(row.ok());
  }
  SECTION("one bias of the output conv") {
    SafeTensors f = clean;
    editable(f, "outc.bias").data<float>()[0] += 0.01f;
    ReferenceReport r = check_reference(f, Device::CPU);
    CHECK(failed(r, "eps_pred"));
    CHECK(failed(r, "loss"));
  }
  SECTION("the class embedding row of one label") {
    SafeTensors f = clean;
    int64_t label = f.at("y").to_ints()[0];
    editable(f, "label_emb.weight").data<float>()[label * 32 + 3] += 0.05f;
    CHECK_FALSE(check_reference(f, Device::CPU).ok());
  }
  SECTION("one timestep") {
    SafeTensors f = clean;
    editable(f, "t").data<int64_t>()[0] += 1;
    CHECK(failed(check_reference(f, Device::CPU), "eps_pred"));
  }
  SECTION("a reference gradient of zero: the floor, no division by zero") {
    SafeTensors f = clean;
    Tensor& g = editable(f, "grad.outc.bias");
    g.copy_from(Tensor::zeros(g.shape()));
    ReferenceReport r = check_reference(f, Device::CPU);
    for (const ReferenceRow& row : r.rows) {
      CHECK(row.floored == (row.name == "grad.outc.bias"));
      if (row.name == "grad.outc.bias") {
        CHECK(std::isfinite(row.rel_err));
        CHECK(row.rel_err > 1.0);  // ||ours|| / 1e-6
      }
    }
    for (const ReferenceRow& row : r.rows)  // the AdamW step is taken from the reference gradients
      CHECK(row.ok() == (row.name != "grad.outc.bias" && row.name != "adamw.outc.bias"));
  }
}

TEST_CASE("the reference check rejects files that are not ddpm-reference v1", "[model][reference]") {
  SafeTensors clean = load_safetensors(kShared);
  SafeTensors f = clean;
  f.metadata["version"] = "2.0";
  CHECK_THROWS_WITH(check_reference(f, Device::CPU), Contains("not a ddpm-reference v1 file"));
  f = clean;
  f.metadata.erase("format");
  CHECK_THROWS_WITH(check_reference(f, Device::CPU), Contains("format '(none)'"));
  f = clean;
  f.metadata["adamw_lr"] = "fast";
  CHECK_THROWS_WITH(check_reference(f, Device::CPU), Contains("'adamw_lr' = 'fast' is not a number"));
  f = clean;
  std::erase_if(f.tensors, [](const auto& p) { return p.first == "grad.sa2.ln.bias"; });
  CHECK_THROWS_WITH(check_reference(f, Device::CPU), Contains("grad.sa2.ln.bias"));
  f = clean;
  std::erase_if(f.tensors, [](const auto& p) { return p.first == "y"; });
  CHECK_THROWS_WITH(check_reference(f, Device::CPU), Contains("no tensor named 'y'"));
}
