// The end-to-end benchmark programs (bench_train, bench_sample) on the CPU: the record file they
// write, and their refusals of bad flags and outputs before anything is timed. DDPM_BENCH_TRAIN
// and DDPM_BENCH_SAMPLE are the built binaries' paths.
#include <nlohmann/json.hpp>

#include "diffusion_helpers.hpp"

using namespace ddpm;
using namespace ddpm::test;
namespace fs = std::filesystem;

namespace {

// The tiniest seed-shaped run: b = 8 at 8x8 (one setup, or two with a second batch).
const std::string kTiny = "--device cpu --base 8 --steps 2 --warmup 1 ";

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

}  // namespace

TEST_CASE("bench_train and bench_sample write a record per setup", "[cli][bench]") {
  TempDir dir;
  for (const std::string program : {DDPM_BENCH_TRAIN, DDPM_BENCH_SAMPLE}) {
    const std::string json = dir / "records.json";
    Run r = run_program(dir, program, kTiny + "--setups 8x1x2,8x3x1 --json " + json);
    REQUIRE(r.code == 0);
    CHECK_THAT(r.output, Catch::Contains("| 8x8x1 b2 |") && Catch::Contains("| 8x8x3 b1 |") &&
                             Catch::Contains("wrote " + json));
    const nlohmann::json doc = read_json(json);
    CHECK(doc.at("device") == "cpu");
    REQUIRE(doc.at("records").size() == 2);
    CHECK(doc["records"][1].at("setup") == "8x8x3 b1");
    const char* rate = program == DDPM_BENCH_TRAIN ? "train_img_s" : "reverse_img_steps_s";
    for (const auto& rec : doc["records"]) CHECK(rec.at(rate).get<double>() > 0);
    CHECK_FALSE(fs::exists(json + ".tmp"));
  }
}

TEST_CASE("bench_train and bench_sample refuse bad flags and outputs before timing anything", "[cli][bench]") {
  TempDir dir;
  fs::create_directories(dir.path / "folder");
  const struct {
    std::string args;
    int code;
    std::string message;
  } cases[] = {
      {"--setups 8x1x2junk", 1, "'8x1x2junk' is not SIZExCHANNELSxBATCH"},
      {"--setups 12x1x2", 1, "SIZE 12 is not a multiple of 8"},
      {"--setups 8x5000x1", 1, "CHANNELS 5000 is not in"},
      {"--setups 8x1x4611686018427387904", 1, "BATCH 4611686018427387904 is not in"},
      {"--setups \"\"", 1, "no setups given"},
      {"--steps 0", 105, "--steps: 0 is not in [1, 1e+06]"},
      {"--steps 99999999999999999999", 105, "is not in [1, 1e+06]"},
      {"--base 0", 105, "--base: 0 is not in [1, 4096]"},
      {"--setups 8x1x1 --json " + (dir / "none/x.json"), 1, "folder " + (dir / "none") + " does not exist"},
      {"--setups 8x1x1 --json " + (dir / "folder"), 1, "is a folder, not a file"},
      {"--setups 8x1x1 --json /dev/full", 1, "/dev/full is not a regular file"},
  };
  for (const std::string program : {DDPM_BENCH_TRAIN, DDPM_BENCH_SAMPLE}) {
    for (const auto& c : cases) {
      Run r = run_program(dir, program, "--device cpu " + c.args);
      CHECK(r.code == c.code);
      CHECK_THAT(r.output, Catch::Contains(c.message) && !Catch::Contains("| setup |"));
    }
  }
  Run chain = run_program(dir, DDPM_BENCH_SAMPLE, "--device cpu --steps 997");  // + 3 warm-up > 999
  CHECK(chain.code == 2);
  CHECK_THAT(chain.output, Catch::Contains("--warmup + --steps must be at most 999") && !Catch::Contains("| setup |"));
  Run guidance = run_program(dir, DDPM_BENCH_SAMPLE, "--device cpu --guidance 1e40");
  CHECK(guidance.code == 105);
  CHECK_THAT(guidance.output, Catch::Contains("--guidance: 1e40 is out of range"));
}
