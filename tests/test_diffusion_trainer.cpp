// Training: a tiny U-Net learns (its loss falls well below the start), runs are deterministic,
// and a run stopped, saved and resumed reproduces the uninterrupted run bit for bit.
#include <filesystem>
#include <numeric>

#include "diffusion/trainer.hpp"
#include "engine/ops.hpp"
#include "diffusion_helpers.hpp"
#include "model/checkpoint.hpp"

using namespace ddpm;
using namespace ddpm::test;
namespace fs = std::filesystem;

namespace {

std::vector<std::vector<float>> snapshot(const std::vector<Tensor>& ts) {
  std::vector<std::vector<float>> out;
  for (const Tensor& t : ts) out.push_back(t.to_floats());
  return out;
}

}  // namespace

TEST_CASE("a tiny U-Net's loss falls well below its start, in f32 and in bf16", "[diffusion][trainer][model]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  const DType dtype = GENERATE(DType::F32, DType::BF16);
  CAPTURE(dtype_name(dtype));
  Dataset data = stripes(64, gen);
  TrainConfig cfg;
  cfg.batch = 8;
  cfg.adamw.lr = 3e-3f;
  cfg.ema_start = 0;
  cfg.seed = gen.seed();
  Generator init = model_init_generator(cfg.seed);
  UNet model(tiny_config(2), init);
  model.set_compute_dtype(dtype);
  Trainer trainer(model, data, cfg);
  std::vector<double> losses;
  const int64_t copies_before = CastCache::copies_made();
  int64_t first_step_copies = 0;
  for (int i = 0; i < 300; ++i) {
    const float loss = trainer.step().item();
    REQUIRE(std::isfinite(loss));
    losses.push_back(loss);
    if (i == 0) first_step_copies = CastCache::copies_made() - copies_before;
  }
  // bf16: the first step makes the weight copies, the others reuse them (AdamW rewrites them).
  CHECK((dtype == DType::BF16 ? first_step_copies > 0 : first_step_copies == 0));
  CHECK(CastCache::copies_made() - copies_before == first_step_copies);
  CHECK(trainer.steps_done() == 300);
  CHECK(trainer.epoch() == (300 - 1) / 8);  // 8 batches per epoch, epochs counted from 0
  const double start = std::accumulate(losses.begin(), losses.begin() + 20, 0.0) / 20;
  const double end = std::accumulate(losses.end() - 50, losses.end(), 0.0) / 50;
  CAPTURE(start, end);
  CHECK(end < 0.5 * start);
}

TEST_CASE("a resumed run matches the uninterrupted one bit for bit", "[diffusion][trainer][checkpoint][model]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  const DType dtype = GENERATE(DType::F32, DType::BF16);  // bf16: the weight copies are made from the loaded weights
  CAPTURE(dtype_name(dtype));
  Dataset data = stripes(10, gen);  // batch 4: two batches an epoch, two images dropped
  TrainConfig cfg;
  cfg.batch = 4;
  cfg.p_uncond = 0.5f;  // both branches occur
  cfg.ema_start = 3;    // both EMA phases occur
  cfg.ema_decay = 0.9f;
  cfg.schedule = ScheduleKind::Cosine;
  cfg.T = 50;
  cfg.seed = gen.seed();
  const int64_t first = 3, total = 8;
  TempDir dir;
  const std::string path = dir / "model.safetensors";

  Generator init_a = model_init_generator(cfg.seed);
  UNet a(tiny_config(2), init_a);
  a.set_compute_dtype(dtype);
  Trainer ta(a, data, cfg);
  std::vector<float> losses_a;
  for (int64_t i = 0; i < total; ++i) losses_a.push_back(ta.step().item());

  std::vector<float> losses_b;
  {
    Generator init_b = model_init_generator(cfg.seed);
    UNet b(tiny_config(2), init_b);
    b.set_compute_dtype(dtype);
    Trainer tb(b, data, cfg);
    for (int64_t i = 0; i < first; ++i) losses_b.push_back(tb.step().item());
    tb.save(path, {{"data", "stripes"}});
    // The same trainer, steps on, taken back to the checkpoint, continues as the first run: its
    // weight copies are made again from the reloaded weights.
    for (int i = 0; i < 2; ++i) tb.step();
    std::unique_ptr<UNet> saved = load_model(path, Device::CPU);
    for (size_t i = 0; i < b.parameters().size(); ++i) b.parameters()[i].detach().copy_from(saved->parameters()[i]);
    tb.load_state(path);
    std::vector<float> again;
    for (int64_t i = first; i < total; ++i) again.push_back(tb.step().item());
    CHECK(again == std::vector<float>(losses_a.begin() + first, losses_a.end()));
  }
  REQUIRE(fs::exists(path));
  REQUIRE(fs::exists(state_path(path)));
  CHECK(state_path(path) == dir / "model.state.safetensors");
  SafeTensors state = load_safetensors(state_path(path));
  TrainConfig saved = train_config_from_state(state.metadata, state_path(path));
  CHECK(saved.seed == cfg.seed);
  CHECK(saved.p_uncond == cfg.p_uncond);
  CHECK(saved.adamw.lr == cfg.adamw.lr);
  CHECK(saved.schedule == ScheduleKind::Cosine);
  CHECK(state.metadata.at("data") == "stripes");

  std::unique_ptr<UNet> c = load_model(path, Device::CPU);
  c->set_compute_dtype(dtype);
  Trainer tc(*c, data, saved);
  tc.load_state(path);
  CHECK(tc.steps_done() == first);
  for (int64_t i = first; i < total; ++i) losses_b.push_back(tc.step().item());

  REQUIRE(losses_a.size() == losses_b.size());
  for (size_t i = 0; i < losses_a.size(); ++i) {
    CAPTURE(i);
    CHECK(losses_a[i] == losses_b[i]);  // bit-exact, not approximately
  }
  CHECK(snapshot(a.parameters()) == snapshot(c->parameters()));
  std::vector<std::vector<float>> ema_a, ema_c;
  ta.with_ema_weights([&] { ema_a = snapshot(a.parameters()); });
  tc.with_ema_weights([&] { ema_c = snapshot(c->parameters()); });
  CHECK(ema_a == ema_c);
  CHECK(ema_a != snapshot(a.parameters()));        // the EMA is its own copy by now

  // The EMA weights saved beside the model are what `ddpm sample` loads.
  tc.save(path);
  std::unique_ptr<UNet> d = load_model(path, Device::CPU);
  CHECK(load_ema_weights(*d, path));
  CHECK(snapshot(d->parameters()) == ema_c);
  CHECK_FALSE(load_ema_weights(*d, dir / "nothing.safetensors"));
}

TEST_CASE("a step recorded as a graph gives the op-by-op step's numbers bit for bit", "[diffusion][trainer][graph]") {
  const uint64_t seed = fresh_seed();
  CAPTURE(seed);
  for (DType dtype : {DType::F32, DType::BF16}) {
    CAPTURE(dtype_name(dtype));
    TinyRun launched = train_tiny(seed, Device::CPU, dtype, false), recorded = train_tiny(seed, Device::CPU, dtype, true);
    CHECK(recorded.losses == launched.losses);
    CHECK(recorded.params == launched.params);
    CHECK(recorded.ema == launched.ema);
  }
}

TEST_CASE("training checkpoints reject mismatched files", "[diffusion][trainer][checkpoint][errors]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  Dataset data = stripes(8, gen);
  TrainConfig cfg;
  cfg.batch = 4;
  cfg.seed = 7;
  TempDir dir;
  const std::string path = dir / "model.safetensors", old = dir / "old.safetensors";
  Generator init = model_init_generator(cfg.seed);
  UNet model(tiny_config(2), init);
  Trainer t(model, data, cfg);
  t.step();
  t.save(path);
  fs::copy_file(path, old);
  t.step();
  t.save(path);
  fs::copy_file(path, path + ".tmp");
  fs::copy_file(old, path, fs::copy_options::overwrite_existing);  // model from step 1, state from step 2
  Trainer fresh(model, data, cfg);
  CHECK_THROWS_WITH(fresh.load_state(path), Catch::Contains("different steps"));
  CHECK_THROWS_WITH(load_ema_weights(model, path), Catch::Contains("does not belong"));

  // A crash between Trainer::save's two renames leaves exactly this, with the model's finished
  // .tmp beside: finish_interrupted_save puts it in place, and only that file.
  fs::path foreign = dir / "model.safetensors.tmp";
  fs::copy_file(old, dir / "step1.tmp");
  fs::rename(foreign, dir / "step2.tmp");
  fs::copy_file(dir / "step1.tmp", foreign);  // a .tmp of another step is not taken
  CHECK_FALSE(finish_interrupted_save(path));
  fs::copy_file(dir / "step2.tmp", foreign, fs::copy_options::overwrite_existing);
  CHECK(finish_interrupted_save(path));
  CHECK_FALSE(fs::exists(foreign));
  CHECK(load_safetensors(path).metadata.at("step") == "2");
  CHECK_NOTHROW(fresh.load_state(path));
  CHECK(fresh.steps_done() == 2);
  CHECK_FALSE(finish_interrupted_save(path));  // nothing left to finish
  // A crash between the renames of a run's first save leaves no model file at all.
  fs::copy_file(path, foreign);
  fs::remove(path);
  CHECK(finish_interrupted_save(path));
  CHECK(fs::exists(path));

  // A state whose position lies outside the data (corrupt or edited) is refused, not followed.
  SafeTensors state = load_safetensors(state_path(path));
  state.metadata["position"] = "-100";
  save_safetensors(state_path(path), state.tensors, state.metadata);
  CHECK_THROWS_WITH(fresh.load_state(path), Catch::Contains("out of range"));
  state.metadata["position"] = "1e30";
  save_safetensors(state_path(path), state.tensors, state.metadata);
  CHECK_THROWS_WITH(fresh.load_state(path), Catch::Contains("not an integer in range"));
  // A second moment below zero cannot come from training (a corrupt file): refused, not trained on
  // (its square root would be NaN, and the run would report a divergence).
  SafeTensors negative = state;
  negative.metadata["position"] = "0";
  bool edited = false;
  for (auto& [name, t] : negative.tensors)
    if (!edited && name.rfind("adamw.exp_avg_sq.", 0) == 0) {
      std::vector<float> v = t.to_floats();
      v[v.size() / 2] = -1e-3f;
      t = Tensor::from_floats(v, t.shape());
      edited = true;
    }
  REQUIRE(edited);
  save_safetensors(state_path(path), negative.tensors, negative.metadata);
  CHECK_THROWS_WITH(fresh.load_state(path), Catch::Contains("adamw.exp_avg_sq holds negative values"));
  save_safetensors(state_path(path), state.tensors, state.metadata);
  CHECK_THROWS_WITH(fresh.load_state(dir / "missing.safetensors"), Catch::Contains("not found"));
  TrainConfig other = cfg;
  other.seed = 8;
  Trainer wrong(model, data, other);
  CHECK_THROWS_WITH(wrong.load_state(path), Catch::Contains("different seed"));

  // Another run's state at the same step, and a run resumed on data of another size, are refused.
  const std::string second = dir / "second.safetensors";
  Trainer t2(model, data, cfg);  // a new run: another run id
  t2.step();
  t2.step();
  t2.save(second);
  t.save(path);  // run t's model and state at step 2 again
  fs::copy_file(state_path(second), state_path(path), fs::copy_options::overwrite_existing);
  CHECK_THROWS_WITH(fresh.load_state(path), Catch::Contains("different training runs"));
  CHECK_THROWS_WITH(load_ema_weights(model, path), Catch::Contains("different training runs"));
  Dataset more = stripes(12, gen);
  Trainer grown(model, more, cfg);
  CHECK_THROWS_WITH(grown.load_state(second), Catch::Contains("8 training images, the data now has 12"));

  // A run whose weights diverged is not saved: its last good checkpoint stays.
  const std::string before = load_safetensors(second).metadata.at("step");
  std::vector<float> w = model.parameters()[0].to_floats();
  w[0] = NAN;
  model.parameters()[0].detach().copy_from(Tensor::from_floats(w, model.parameters()[0].shape()));
  CHECK_THROWS_WITH(t2.save(second), Catch::Contains("NaN or infinity") && Catch::Contains("not saved"));
  CHECK(load_safetensors(second).metadata.at("step") == before);
  CHECK_FALSE(fs::exists(second + ".tmp"));
  CHECK_FALSE(fs::exists(state_path(second) + ".tmp"));
}

TEST_CASE("the trainer rejects data that does not fit the model", "[diffusion][trainer][errors]") {
  Generator gen = fresh_generator();
  Dataset data = stripes(6, gen);
  Generator init(1);
  UNet model(tiny_config(2), init);
  TrainConfig cfg;
  cfg.batch = 7;
  CHECK_THROWS_WITH(Trainer(model, data, cfg), Catch::Contains("batch 7"));
  cfg.batch = 2;
  for (float lr : {-1.0f, 0.0f, NAN, INFINITY}) {
    TrainConfig bad = cfg;
    bad.adamw.lr = lr;
    CHECK_THROWS_WITH(Trainer(model, data, bad), Catch::Contains("bad AdamW settings"));
  }
  TrainConfig bad_ema = cfg;
  bad_ema.ema_start = -5;
  CHECK_THROWS_WITH(Trainer(model, data, bad_ema), Catch::Contains("bad EMA settings"));
  UNet three(tiny_config(3), init);
  CHECK_THROWS_WITH(Trainer(three, data, cfg), Catch::Contains("3 classes"));
  UNetConfig rgb = tiny_config(2);
  rgb.in_channels = rgb.out_channels = 3;
  UNet color(rgb, init);
  CHECK_THROWS_WITH(Trainer(color, data, cfg), Catch::Contains("channels"));
  cfg.p_uncond = 1.5f;
  CHECK_THROWS_WITH(Trainer(model, data, cfg), Catch::Contains("p_uncond"));
}
