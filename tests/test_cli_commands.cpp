// The `ddpm` binary end to end: exit codes (0 ok, 1 ddpm::Error, 2 bad flags, 130 Ctrl-C),
// messages, and the files each command writes. DDPM_CLI is the built binary's path.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "diffusion/image_io.hpp"
#include "diffusion/schedule.hpp"
#include "diffusion/trainer.hpp"
#include "diffusion_helpers.hpp"
#include "model/safetensors.hpp"

using namespace ddpm;
using namespace ddpm::test;
namespace fs = std::filesystem;

namespace {

// Runs `ddpm <args>` (optionally under a prefix such as `timeout`).
Run ddpm_cli(const TempDir& dir, const std::string& args, const std::string& prefix = "") {
  return run_program(dir, DDPM_CLI, args, prefix);
}

int64_t count_lines(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) ++n;
  return n;
}

// Two classes of 8x8 PNGs in dir/data/{a,b}.
std::string write_folder_data(const TempDir& dir, Generator& gen) {
  for (const char* c : {"a", "b"}) {
    fs::create_directories(dir.path / "data" / c);
    for (int i = 0; i < 3; ++i) {
      Image img(8, 8, 3);
      img.pixels = random_bytes(img.pixels.size(), gen);
      write_png(dir / ("data/" + std::string(c) + "/" + std::to_string(i) + ".png"), img);
    }
  }
  return "folder:" + (dir / "data");
}

}  // namespace

TEST_CASE("ddpm: help exits 0, bad flags exit 2 with a message", "[cli]") {
  TempDir dir;
  Run help = ddpm_cli(dir, "--help");
  CHECK(help.code == 0);
  for (const char* cmd : {"train", "sample", "forward", "trace", "schedule"}) CHECK_THAT(help.output, Catch::Contains(cmd));
  Run train_help = ddpm_cli(dir, "train --help");
  CHECK(train_help.code == 0);
  CHECK_THAT(train_help.output, Catch::Contains("--p-uncond") && Catch::Contains("--resume"));
  for (const char* sub : {"sample", "forward", "trace", "schedule"}) CHECK(ddpm_cli(dir, std::string(sub) + " --help").code == 0);

  CHECK(ddpm_cli(dir, "").code == 2);
  Run bogus = ddpm_cli(dir, "train --steps 1 --bogus");
  CHECK(bogus.code == 2);
  CHECK_THAT(bogus.output, Catch::Contains("--bogus"));
  Run no_steps = ddpm_cli(dir, "train --out " + (dir / "x"));
  CHECK(no_steps.code == 2);
  CHECK_THAT(no_steps.output, Catch::Contains("--steps") && !Catch::Contains("required is required"));
  CHECK(ddpm_cli(dir, "train --steps -3").code == 2);
  CHECK(ddpm_cli(dir, "train --steps 5 --epochs 1").code == 2);
  CHECK(ddpm_cli(dir, "schedule --schedule quadratic").code == 2);
  CHECK(ddpm_cli(dir, "schedule --T 1").code == 2);
  CHECK(ddpm_cli(dir, "sample --sampler euler").code == 2);
  CHECK(ddpm_cli(dir, "sample --guidance -1").code == 2);
  CHECK(ddpm_cli(dir, "forward --frames abc").code == 2);
  CHECK(ddpm_cli(dir, "sample --conv fast").code == 2);
  CHECK(ddpm_cli(dir, "sample --precision fp16").code == 2);
  // Named values are taken by name only, not as the enum's numbers.
  Run precision_number = ddpm_cli(dir, "sample --precision 1");
  CHECK(precision_number.code == 2);
  CHECK_THAT(precision_number.output, Catch::Contains("'1' is not one of bf16|f32"));
  CHECK(ddpm_cli(dir, "train --steps 1 --schedule 1").code == 2);
  CHECK_THAT(ddpm_cli(dir, "sample --help").output, Catch::Contains("--precision ENUM:bf16|f32=f32"));
  CHECK(ddpm_cli(dir, "classifier train --precision bf16").code == 2);  // the classifier runs in f32 only
  // Numbers: NaN, infinity and values past a flag's bounds are refused before any work.
  for (const char* flags : {"--steps 1 --lr nan", "--steps 1 --weight-decay inf", "--steps 1 --max-minutes nan",
                            "--epochs nan", "--epochs 1e300", "--steps 99999999999999999999", "--steps 1 --seed -1",
                            "--steps 1 --threads 100000"}) {
    Run r = ddpm_cli(dir, "train " + std::string(flags) + " --out " + (dir / "x"));
    CHECK(r.code == 2);
    CHECK_FALSE(fs::exists(dir / "x"));
  }
  CHECK_THAT(ddpm_cli(dir, "sample --guidance nan").output, Catch::Contains("not a finite number"));
  // Seeds are checked as integers: the largest uint64 is a seed, one more is not.
  const std::string no_data = " --data fashion-mnist:" + (dir / "none");
  CHECK(ddpm_cli(dir, "forward --seed 18446744073709551615" + no_data).code == 1);  // got as far as the data
  CHECK(ddpm_cli(dir, "forward --seed 18446744073709551616" + no_data).code == 2);
  CHECK_THAT(ddpm_cli(dir, "train --steps abc").output, Catch::Contains("'abc' is not a number"));
}

TEST_CASE("ddpm: errors exit 1 with 'error: ...'", "[cli]") {
  TempDir dir;
  Run unknown = ddpm_cli(dir, "train --data nonsense --steps 1 --out " + (dir / "run"));
  CHECK(unknown.code == 1);
  CHECK_THAT(unknown.output, Catch::StartsWith("error: ") && Catch::Contains("unknown data set"));
  CHECK_FALSE(fs::exists(dir / "run"));  // a new run's folder goes again when the run fails before its first save
  REQUIRE(::mkfifo((dir / "fifo.png").c_str(), 0644) == 0);  // would block the write until a reader came
  Run fifo = ddpm_cli(dir, "sample --out " + (dir / "fifo.png"), "timeout 60");
  CHECK(fifo.code == 1);
  CHECK_THAT(fifo.output, Catch::Contains("pipe or socket"));
  Run missing = ddpm_cli(dir, "forward --data fashion-mnist:" + (dir / "none"));
  CHECK(missing.code == 1);
  CHECK_THAT(missing.output, Catch::Contains("none/train-images") && !Catch::Contains("apt install"));
  Run size = ddpm_cli(dir, "train --data fashion-mnist:" + (dir / "none") + " --image-size 30 --steps 1");
  CHECK(size.code == 1);
  CHECK_THAT(size.output, Catch::Contains("multiple of 8"));
  Run ckpt = ddpm_cli(dir, "sample --checkpoint " + (dir / "nothing.safetensors"));
  CHECK(ckpt.code == 1);
  CHECK_THAT(ckpt.output, Catch::Contains("nothing.safetensors") && Catch::Contains("not found"));
  write_file(dir / "junk.safetensors", {1, 2, 3});
  CHECK(ddpm_cli(dir, "sample --checkpoint " + (dir / "junk.safetensors")).code == 1);
  CHECK(ddpm_cli(dir, "train --resume --steps 2 --out " + (dir / "no_run")).code == 1);
  Run conv = ddpm_cli(dir, "sample --conv ours --checkpoint " + (dir / "junk.safetensors"));  // ours is TF32-only
  CHECK(conv.code == 1);
  CHECK_THAT(conv.output, Catch::Contains("--conv ours needs --tf32"));
  // In bf16 our kernels need no TF32: the run gets as far as the (junk) checkpoint.
  Run conv16 = ddpm_cli(dir, "sample --conv ours --precision bf16 --checkpoint " + (dir / "junk.safetensors"));
  CHECK(conv16.code == 1);
  CHECK_THAT(conv16.output, !Catch::Contains("needs --tf32"));
  // measured (like auto) only chooses where ours may run, so it needs no TF32 either.
  Run measured = ddpm_cli(dir, "sample --conv measured --checkpoint " + (dir / "junk.safetensors"));
  CHECK(measured.code == 1);
  CHECK_THAT(measured.output, Catch::Contains("junk.safetensors") && !Catch::Contains("--conv"));
  // A class folder whose name is not UTF-8 cannot go into the checkpoint's metadata: the run stops
  // at its first (step 0) save, before any training.
  Generator gen = fresh_generator();
  const std::string folder = write_folder_data(dir, gen);
  fs::rename(dir / "data/b", dir / "data/b\xff");
  Run utf8 = ddpm_cli(dir, "train --data " + folder + " --image-size 8 --base-channels 4 --time-dim 8 --batch 2 "
                           "--device cpu --steps 1000000 --out " + (dir / "utf8"));
  CHECK(utf8.code == 1);
  CHECK_THAT(utf8.output, Catch::Contains("class 1's folder name \"b\xEF\xBF\xBD\" is not valid UTF-8") &&
                              !Catch::Contains("step 1/"));
  Run clf_out = ddpm_cli(dir, "classifier train --out " + (dir / "none/c.safetensors"));
  CHECK(clf_out.code == 1);
  CHECK_THAT(clf_out.output, Catch::Contains("does not exist"));
  if (!cuda_available()) {
    Run cuda = ddpm_cli(dir, "sample --device cuda");
    CHECK(cuda.code == 1);
    CHECK_THAT(cuda.output, Catch::Contains("cuda"));
  }
}

TEST_CASE("ddpm schedule writes the coefficients and a plot", "[cli]") {
  TempDir dir;
  Run r = ddpm_cli(dir, "schedule --schedule cosine --T 50 --csv " + (dir / "c.csv") + " --png " + (dir / "c.png"));
  REQUIRE(r.code == 0);
  std::ifstream csv(dir / "c.csv");
  std::string line;
  std::getline(csv, line);
  CHECK(line == "t,beta,alpha,alpha_bar,sqrt_abar,sqrt_1m_abar");
  Schedule s = make_schedule(ScheduleKind::Cosine, 50);
  for (int64_t t = 0; t < 50; ++t) {
    REQUIRE(std::getline(csv, line));
    std::vector<double> v;
    std::stringstream fields(line);
    for (std::string f; std::getline(fields, f, ',');) v.push_back(std::stod(f));
    REQUIRE(v.size() == 6);
    CHECK(v[0] == t);
    CHECK(v[1] == Approx(s.beta[size_t(t)]).epsilon(1e-8));
    CHECK(v[3] == Approx(s.alpha_bar[size_t(t)]).epsilon(1e-8).margin(1e-12));
    CHECK(v[5] == Approx(s.sqrt_1m_abar[size_t(t)]).epsilon(1e-8));
  }
  CHECK_FALSE(std::getline(csv, line));
  Image plot = read_image(dir / "c.png", 3);
  CHECK(plot.width == 680);
  CHECK(plot.height == 420);
}

TEST_CASE("ddpm forward draws a linear and a cosine row", "[cli]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  TempDir dir;
  write_fashion(dir, 3, gen);
  Run r = ddpm_cli(dir, "forward --data fashion-mnist:" + dir.path.string() + " --index 2 --frames 4 --out " +
                            (dir / "f.png"));
  REQUIRE(r.code == 0);
  Image strip = read_image(dir / "f.png", 1);
  CHECK(strip.width == 2 + 5 * 34);  // x0 and 4 frames of 32 px, 2 px apart
  CHECK(strip.height == 2 + 2 * 34);
  CHECK(ddpm_cli(dir, "forward --data fashion-mnist:" + dir.path.string() + " --index 3").code == 1);
}

TEST_CASE("ddpm train, sample, trace and resume on a tiny model", "[cli][model]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  TempDir dir;
  const std::string data = write_folder_data(dir, gen), run = dir / "run";
  const std::string model = " --image-size 8 --base-channels 4 --time-dim 8 --batch 2 --T 20 --device cpu",
                    tiny = model + " --out " + run;
  Run train = ddpm_cli(dir, "train --data " + data + tiny + " --steps 4 --save-every 2");
  REQUIRE(train.code == 0);
  CHECK(fs::exists(run + "/model.safetensors"));
  CHECK(fs::exists(run + "/model.state.safetensors"));
  CHECK(count_lines(run + "/loss.csv") == 1 + 4);
  Run again = ddpm_cli(dir, "train --data " + data + tiny + " --steps 4");
  CHECK(again.code == 1);
  CHECK_THAT(again.output, Catch::Contains("--resume"));

  Run sample = ddpm_cli(dir, "sample --checkpoint " + run + " --steps 3 --per-class 3 --device cpu --out " +
                                 (dir / "s.png"));
  REQUIRE(sample.code == 0);
  CHECK_THAT(sample.output, Catch::Contains("EMA"));
  Image grid = read_image(dir / "s.png", 3);
  CHECK(grid.width == 2 + 3 * 10);  // 3 per class
  CHECK(grid.height == 2 + 2 * 10);  // a row per class
  Run ddim = ddpm_cli(dir, "sample --checkpoint " + run + "/model.safetensors --sampler ddim --steps 2 --schedule "
                               "cosine --classes 1 --per-class 2 --guidance 0 --precision bf16 --out " + (dir / "d.png"));
  REQUIRE(ddim.code == 0);
  CHECK(read_image(dir / "d.png", 3).height == 2 + 10);
  Run bad_class = ddpm_cli(dir, "sample --checkpoint " + run + " --classes 0,5 --out " + (dir / "x.png"));
  CHECK(bad_class.code == 2);
  CHECK_THAT(bad_class.output, Catch::Contains("out of range"));

  // Outputs are checked before sampling; non-PNG failures to write are errors, not "wrote".
  Run no_dir = ddpm_cli(dir, "sample --checkpoint " + run + " --out " + (dir / "none/s.png"));
  CHECK(no_dir.code == 1);
  CHECK_THAT(no_dir.output, Catch::Contains("does not exist") && !Catch::Contains("row 0"));
  if (fs::exists("/dev/full")) {
    Run full = ddpm_cli(dir, "sample --checkpoint " + run + " --steps 1 --per-class 1 --device cpu --out /dev/full");
    CHECK(full.code == 1);
    CHECK_THAT(full.output, Catch::Contains("cannot write /dev/full"));
  }

  // info takes the folder, prints what training saved and costs the checkpoint's image size.
  Run info = ddpm_cli(dir, "info --checkpoint " + run);
  REQUIRE(info.code == 0);
  CHECK_THAT(info.output, Catch::Contains("step: 4") && Catch::Contains("T: 20") && Catch::Contains("8x8 images"));
  CHECK_THAT(ddpm_cli(dir, "info --image-size 16 --checkpoint " + run).output, Catch::Contains("16x16 images"));

  Run trace = ddpm_cli(dir, "trace --checkpoint " + run + " --class 1 --steps 5 --frames 3 --out " + (dir / "t.png"));
  REQUIRE(trace.code == 0);
  Image strip = read_image(dir / "t.png", 3);
  CHECK(strip.width == 2 + 4 * 10);  // 3 frames and the sample
  CHECK(strip.height == 2 + 2 * 10);
  CHECK(ddpm_cli(dir, "trace --checkpoint " + run + " --class 2").code == 1);

  // An unconditional model takes no class flags; a run that diverges stops with an error and
  // saves nothing after the divergence.
  const std::string uncond = dir / "uncond";
  REQUIRE(ddpm_cli(dir, "train --unconditional --data " + data + model + " --steps 1 --out " +
                            uncond).code == 0);
  CHECK_THAT(ddpm_cli(dir, "sample --checkpoint " + uncond + " --classes 3").output, Catch::Contains("unconditional"));
  CHECK_THAT(ddpm_cli(dir, "trace --checkpoint " + uncond + " --class 3").output, Catch::Contains("unconditional"));
  const std::string diverged = dir / "diverged";
  Run nan = ddpm_cli(dir, "train --lr 1e30 --data " + data + model + " --steps 4 --out " +
                              diverged);
  CHECK(nan.code == 1);
  CHECK_THAT(nan.output, Catch::Contains("diverged") && Catch::Contains("the checkpoint of step 0"));
  CHECK(load_safetensors(diverged + "/model.safetensors").metadata.at("step") == "0");
  // That untrained step-0 checkpoint does not block a retry with other settings.
  CHECK(ddpm_cli(dir, "train --lr 1e-4 --data " + data + model + " --steps 1 --out " + diverged).code == 0);

  // A sample must not replace the checkpoint it came from; a resumed run says which flags its saved
  // settings override, and one that is already there trains nothing.
  CHECK_THAT(ddpm_cli(dir, "sample --checkpoint " + run + " --out " + run + "/model.safetensors").output,
             Catch::Contains("are the same file"));
  Run done = ddpm_cli(dir, "train --resume --steps 3 --lr 0.5 --batch 3 --out " + run);
  CHECK(done.code == 0);
  CHECK_THAT(done.output, Catch::Contains("ignored: --batch, --lr") && Catch::Contains("nothing to train"));
  CHECK(load_safetensors(run + "/model.safetensors").metadata.at("step") == "4");

  // One run per folder: a second `ddpm train` on a folder in use stops at once.
  {
    const int fd = ::open((run + "/.lock").c_str(), O_RDWR);
    REQUIRE(fd >= 0);
    REQUIRE(::flock(fd, LOCK_EX | LOCK_NB) == 0);  // as a running `ddpm train` holds it
    Run busy = ddpm_cli(dir, "train --resume --steps 6 --out " + run);
    CHECK(busy.code == 1);
    CHECK_THAT(busy.output, Catch::Contains("in use by another"));
    ::close(fd);
  }

  // Checkpoints hold f32 weights whatever the precision: an f32 run continues in bf16.
  Run resume = ddpm_cli(dir, "train --resume --steps 6 --device cpu --precision bf16 --out " + run);
  REQUIRE(resume.code == 0);
  CHECK_THAT(resume.output, Catch::Contains("resuming") && Catch::Contains("cpu bf16"));
  CHECK(count_lines(run + "/loss.csv") == 1 + 6);
  CHECK(load_safetensors(run + "/model.safetensors").metadata.at("step") == "6");
}

TEST_CASE("ddpm train --max-minutes stops on time, saves, and --resume continues", "[cli][model]") {
  Generator gen = fresh_generator();
  TempDir dir;
  const std::string data = write_folder_data(dir, gen), run = dir / "run";
  const auto t0 = std::chrono::steady_clock::now();
  Run r = ddpm_cli(dir, "train --data " + data + " --image-size 8 --base-channels 4 --time-dim 8 --batch 2 --T 20 "
                        "--device cpu --steps 100000000 --max-minutes 0.03 --out " + run);  // 1.8 s
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  REQUIRE(r.code == 0);
  CHECK_THAT(r.output, Catch::Contains("--max-minutes 0.03 reached") && Catch::Contains("--resume"));
  CHECK(seconds < 30);
  const int64_t step = std::stoll(load_safetensors(run + "/model.safetensors").metadata.at("step"));
  CHECK(step > 0);
  CHECK(count_lines(run + "/loss.csv") == 1 + step);
  CHECK(ddpm_cli(dir, "train --resume --steps " + std::to_string(step + 2) + " --device cpu --out " + run).code == 0);
  CHECK(count_lines(run + "/loss.csv") == 1 + step + 2);
  CHECK(ddpm_cli(dir, "train --max-minutes 0 --steps 1").code == 2);
}

TEST_CASE("ddpm train: Ctrl-C, SIGTERM or SIGHUP finishes the step, saves and exits 130", "[cli][model]") {
  // The signal goes to `ddpm` alone once its progress (a line every step) shows a second step
  // done, so however slow the machine, it lands in training. With --sample-every 1 a grid of 100
  // sampler steps follows every step: there the signal goes once the first grid shows its first
  // sampler step, and lands in the ~99 steps (about a second here) that are left of that grid, which
  // is dropped after its current sampler step, not run to the end.
  const auto [signal, flags] = GENERATE(table<std::string, std::string>(
      {{"INT", "--T 20 --image-size 8 --base-channels 4"},
       {"TERM", "--T 20 --image-size 8 --base-channels 4"},
       {"HUP", "--T 20 --image-size 8 --base-channels 4"},
       {"INT", "--sample-every 1 --image-size 16 --base-channels 8"}}));
  const bool grids = flags.find("--sample-every") != std::string::npos;
  const std::string progress = grids ? "sample [1-9][0-9]*/100" : "step ([2-9]|[1-9][0-9]+)/";
  Generator gen = fresh_generator();
  TempDir dir;
  const std::string data = write_folder_data(dir, gen), run = dir / "run";
  const std::string train = std::string(DDPM_CLI) + " train --data " + data + " --time-dim 8 --batch 2 " + flags +
                            " --log-every 0.000001 --device cpu --steps 100000000 --out " + run;
  const std::string output = dir / "program_output.txt";  // where run_program sends the shell's output
  // The shell's exit code is ddpm's.
  Run r = run_program(dir, "sh",
                      "-c '" + train + " & pid=$!; until grep -qE \"" + progress + "\" " + output +
                          "; do sleep 0.02; done; kill -" + signal + " $pid; wait $pid'",
                      "timeout 300");
  CHECK(r.code == 130);
  CHECK_THAT(r.output, Catch::Contains("interrupted") && Catch::Contains("--resume"));
  REQUIRE(fs::exists(run + "/model.safetensors"));
  const int64_t step = std::stoll(load_safetensors(run + "/model.safetensors").metadata.at("step"));
  CHECK(step > 0);
  CHECK(count_lines(run + "/loss.csv") == 1 + step);
  if (grids) {
    CHECK(step == 1);
    CHECK_THAT(r.output, Catch::Contains("no sample grid at step 1: sample: stopped after step "));
    CHECK_FALSE(fs::exists(run + "/samples_1.png"));
  }
}
