// Backend Measured's rule (kernels/conv.hpp, ours_measured_faster) against the measurements it
// stands for: the newest bench_conv results in benchmarks/results/. Where one backend was more than
// 10% faster on a (shape, direction, precision) of a training step, the rule must pick it; closer
// calls may go either way. New measurements that disagree with the rule fail here until the rule
// follows them.
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <tuple>

#include "helpers.hpp"
#include "kernels/conv.hpp"

using namespace ddpm;
using kernels::ConvDir;

namespace {

// benchmarks/results/: $DDPM_RESULTS_DIR, else where the build found it, else relative to the
// working directory (a copy of the tree elsewhere, as on the GPU machine).
std::filesystem::path results_dir() {
  for (const char* dir : {static_cast<const char*>(std::getenv("DDPM_RESULTS_DIR")), DDPM_RESULTS_DIR, "benchmarks/results"})
    if (dir && std::filesystem::is_directory(dir)) return dir;
  FAIL("benchmarks/results/ not found: set DDPM_RESULTS_DIR or run from the repository root");
  return {};
}

// The bench_conv JSON with the latest "date" under benchmarks/results/ (folders included).
nlohmann::json newest_bench_conv() {
  nlohmann::json newest;
  for (const auto& e : std::filesystem::recursive_directory_iterator(results_dir())) {
    const std::string name = e.path().filename().string();
    if (!e.is_regular_file() || name.find("bench_conv") == std::string::npos || e.path().extension() != ".json")
      continue;
    std::ifstream in(e.path());
    nlohmann::json doc = nlohmann::json::parse(in);
    if (doc.contains("records") && (newest.is_null() || doc["date"] > newest["date"])) newest = std::move(doc);
  }
  return newest;
}

ConvDir dir_of(const std::string& d) {
  if (d == "fwd") return ConvDir::Forward;
  if (d == "dgrad") return ConvDir::Data;
  REQUIRE(d == "wgrad");
  return ConvDir::Filter;
}

}  // namespace

TEST_CASE("backend Measured picks the backend bench_conv measured faster", "[op][conv]") {
  const nlohmann::json doc = newest_bench_conv();
  REQUIRE(!doc.is_null());
  CAPTURE(doc["date"], doc["commit"]);
  // (setup, shape, direction, precision) -> median microseconds of ours and of cuDNN.
  using Key = std::tuple<std::string, std::string, std::string, std::string>;
  std::map<Key, std::pair<double, double>> us;
  std::map<Key, kernels::ConvShape> shapes;
  for (const auto& r : doc["records"]) {
    if (!r.contains("median_us") || !r.value("in_step", true)) continue;  // a failed timing; not in a step
    const std::string variant = r["variant"];  // "ours-bf16", "cudnn-tf32", ...
    const size_t dash = variant.find('-');
    const Key key{r["setup"], r["shape"], r["dir"], variant.substr(dash + 1)};
    (variant.substr(0, dash) == "ours" ? us[key].first : us[key].second) = r["median_us"];
    shapes[key] = {r["n"], r["h"], r["w"], r["cin"], r["cout"], r["k"]};
  }
  int compared = 0, ours_faster = 0;
  for (const auto& [key, t] : us) {
    const auto& [setup, shape, dir, precision] = key;
    if (t.first <= 0 || t.second <= 0) continue;  // one backend's timing missing
    const double speedup = t.second / t.first;     // > 1: ours was faster
    const bool rule = kernels::ours_measured_faster(shapes[key], dir_of(dir), precision == "bf16");
    CAPTURE(setup, shape, dir, precision, speedup, rule);
    if (speedup > 1.1) CHECK(rule);
    if (speedup < 1 / 1.1) CHECK_FALSE(rule);
    ++compared;
    ours_faster += speedup > 1.1;
  }
  // The file held both setups' convolutions in both precisions, ours ahead in a few of them.
  CHECK(compared >= 100);
  CHECK(ours_faster >= 1);
}
