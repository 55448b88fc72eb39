#include "diffusion/trainer.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "engine/autograd.hpp"
#include "engine/noise.hpp"
#include "engine/ops.hpp"
#include "model/checkpoint.hpp"

namespace ddpm {
namespace {

// Philox keys of the streams that are not the training stream (any fixed, distinct constants).
constexpr uint64_t kInitStream = 0x243F6A8885A308D3ull;
constexpr uint64_t kShuffleStream = 0x13198A2E03707344ull;

template <class T>
std::string str(T v) {
  std::ostringstream s;
  s.precision(9);  // enough digits that a float reads back bit-exactly
  s << v;
  return s.str();
}

double number(const std::map<std::string, std::string>& m, const std::string& key, const std::string& path) {
  const std::string v = metadata_value(m, key, path);
  size_t used = 0;
  double d = 0;
  try {
    d = std::stod(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  DDPM_CHECK(used == v.size() && !v.empty(), "checkpoint", path, ": metadata '", key, "' is not a number: '", v, "'");
  return d;
}

uint64_t unsigned_number(const std::map<std::string, std::string>& m, const std::string& key, const std::string& path) {
  const std::string v = metadata_value(m, key, path);
  size_t used = 0;
  uint64_t u = 0;
  try {
    u = std::stoull(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  DDPM_CHECK(used == v.size() && !v.empty() && v[0] != '-', "checkpoint", path, ": metadata '", key,
             "' is not an unsigned integer: '", v, "'");
  return u;
}

}  // namespace

Generator model_init_generator(uint64_t seed) { return Generator(seed ^ kInitStream); }

namespace {

// A model file and a state file of two different runs can share a step; their run ids differ.
void check_same_run(const std::map<std::string, std::string>& model_meta,
                    const std::map<std::string, std::string>& state_meta, const std::string& model_path,
                    const std::string& state_path) {
  if (!model_meta.count("run") || !state_meta.count("run")) return;  // files of earlier versions
  DDPM_CHECK(model_meta.at("run") == state_meta.at("run"), "checkpoint", state_path, " and ", model_path,
             " are from different training runs (run ", state_meta.at("run"), " and ", model_meta.at("run"), ")");
}

std::string new_run_id() {
  std::random_device rd;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%08x%08x", rd(), rd());
  return buf;
}

}  // namespace

std::string state_path(const std::string& model_path) {
  const std::string ext = ".safetensors";
  std::string base = model_path.ends_with(ext) ? model_path.substr(0, model_path.size() - ext.size()) : model_path;
  return base + ".state" + ext;
}

std::string metadata_value(const std::map<std::string, std::string>& metadata, const std::string& key,
                           const std::string& path) {
  auto it = metadata.find(key);
  DDPM_CHECK(it != metadata.end(), "checkpoint", path, ": metadata has no '", key, "'");
  return it->second;
}

int64_t metadata_int(const std::map<std::string, std::string>& metadata, const std::string& key,
                     const std::string& path) {
  const double v = number(metadata, key, path);
  DDPM_CHECK(v == std::floor(v) && std::abs(v) < 9e18, "checkpoint", path, ": metadata '", key,
             "' is not an integer in range");
  return int64_t(v);
}

std::string join_names(const std::vector<std::string>& names) {
  for (size_t i = 0; i < names.size(); ++i)
    if (!valid_utf8(names[i])) {
      // Bad bytes shown as U+FFFD: enough to find the folder.
      const std::string shown =
          nlohmann::json(names[i]).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      detail::fail("checkpoint", "class ", i, "'s folder name ", shown,
                   " is not valid UTF-8 (a folder data set's folder names become the class names): rename it");
    }
  return nlohmann::json(names).dump();
}

std::vector<std::string> split_names(const std::string& json, const std::string& path) {
  try {
    return nlohmann::json::parse(json).get<std::vector<std::string>>();
  } catch (const std::exception&) {
    detail::fail("checkpoint", path, ": class_names is not a JSON list of strings: ", json);
  }
}

TrainConfig train_config_from_state(const std::map<std::string, std::string>& m, const std::string& path) {
  DDPM_CHECK(m.count("format") && m.at("format") == "ddpm-train-state", "checkpoint", path,
             ": not a ddpm training state file");
  TrainConfig c;
  c.batch = metadata_int(m, "batch", path);
  c.adamw.lr = float(number(m, "adamw_lr", path));
  c.adamw.beta1 = float(number(m, "adamw_beta1", path));
  c.adamw.beta2 = float(number(m, "adamw_beta2", path));
  c.adamw.eps = float(number(m, "adamw_eps", path));
  c.adamw.weight_decay = float(number(m, "adamw_weight_decay", path));
  c.ema_decay = float(number(m, "ema_decay", path));
  c.ema_start = metadata_int(m, "ema_start", path);
  c.p_uncond = float(number(m, "p_uncond", path));
  c.seed = unsigned_number(m, "seed", path);
  c.schedule = parse_schedule(metadata_value(m, "schedule", path));
  c.T = metadata_int(m, "T", path);
  return c;
}

Trainer::Trainer(UNet& model, const Dataset& data, const TrainConfig& config)
    : model_(model),
      data_(data),
      config_(config),
      device_(model.parameters().at(0).device()),
      schedule_(make_schedule(config.schedule, config.T)),
      sqrt_abar_(Schedule::tensor(schedule_.sqrt_abar, device_)),
      sqrt_1m_abar_(Schedule::tensor(schedule_.sqrt_1m_abar, device_)),
      params_(model.parameters()),
      optimizer_(params_, config.adamw),
      ema_(params_, config.ema_decay, config.ema_start),
      gen_(config.seed),
      run_id_(new_run_id()) {
  const UNetConfig& mc = model.config();
  DDPM_CHECK(config.batch >= 1 && config.batch <= data.count(), "train", "batch ", config.batch,
             " must be in [1, ", data.count(), "] (the data set's size)");
  DDPM_CHECK(config.p_uncond >= 0.0f && config.p_uncond <= 1.0f, "train", "p_uncond must be in [0, 1], got ",
             config.p_uncond);
  const AdamWConfig& a = config.adamw;
  DDPM_CHECK(std::isfinite(a.lr) && a.lr > 0 && std::isfinite(a.weight_decay) && a.weight_decay >= 0 && a.eps > 0 &&
                 a.beta1 >= 0 && a.beta1 < 1 && a.beta2 >= 0 && a.beta2 < 1,
             "train", "bad AdamW settings: lr ", a.lr, ", weight decay ", a.weight_decay, ", eps ", a.eps, ", betas ",
             a.beta1, ", ", a.beta2);
  DDPM_CHECK(config.ema_decay >= 0.0f && config.ema_decay <= 1.0f && config.ema_start >= 0, "train",
             "bad EMA settings: decay ", config.ema_decay, ", start ", config.ema_start);
  DDPM_CHECK(mc.in_channels == data.channels && mc.out_channels == data.channels, "train", "the model has ",
             mc.in_channels, " input and ", mc.out_channels, " output channels but ", data.name, " images have ",
             data.channels);
  DDPM_CHECK(mc.num_classes == 0 || mc.num_classes == data.num_classes(), "train", "the model has ",
             mc.num_classes, " classes but ", data.name, " has ", data.num_classes());
}

std::vector<int64_t> Trainer::next_batch_indices() {
  const int64_t n = data_.count(), b = config_.batch;
  if (position_ + b > n) {  // the epoch's last partial batch is dropped
    ++epoch_;
    position_ = 0;
    order_.clear();
  }
  if (order_.empty()) {
    // Fisher-Yates driven by uniforms of the shuffle stream at offset epoch * n: epoch e's
    // order depends on (seed, e) only, so a resumed run recomputes it.
    Generator g(config_.seed ^ kShuffleStream, uint64_t(epoch_) * uint64_t(n));
    std::vector<float> u = Tensor::rand({n}, g).to_floats();
    order_.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i) order_[size_t(i)] = i;
    for (int64_t i = n - 1; i > 0; --i) {
      const int64_t j = std::min<int64_t>(int64_t(double(u[size_t(i)]) * double(i + 1)), i);
      std::swap(order_[size_t(i)], order_[size_t(j)]);
    }
  }
  std::vector<int64_t> idx(order_.begin() + position_, order_.begin() + position_ + b);
  position_ += b;
  return idx;
}

Tensor Trainer::step() {
  // The labels and t stay on the host, where the ops that use them check them (and from where they
  // go up without waiting): nothing in a step waits for the GPU.
  Batch batch = data_.batch(next_batch_indices(), Device::CPU);
  const int64_t b = config_.batch, T = config_.T;
  std::vector<float> u = Tensor::rand({b + 1}, gen_).to_floats();
  std::vector<int64_t> ts(static_cast<size_t>(b));
  for (int64_t i = 0; i < b; ++i)  // uniform in [1, T-1]
    ts[size_t(i)] = 1 + std::min<int64_t>(int64_t(double(u[size_t(i)]) * double(T - 1)), T - 2);
  Tensor t = Tensor::from_ints(ts, {b});
  const bool drop_labels = model_.config().num_classes == 0 || u[size_t(b)] < config_.p_uncond;
  Tensor y = drop_labels ? Tensor() : batch.labels;

  NoisedBatch noised = q_sample(batch.images.to(device_), t, sqrt_abar_, sqrt_1m_abar_, gen_);
  Tensor loss;
  if (config_.graph) {
    loss = recorded_step(noised, t, y);
  } else {
    CastCache::Use copies(optimizer_.weight_copies());  // a bf16 model's weights (engine/optim.hpp)
    loss = mse_loss(model_.forward(noised.x_t, t, y), noised.eps);
    optimizer_.zero_grad();
    loss.backward();
  }
  optimizer_.step();
  ema_.update(params_, step_);
  ++step_;
  return loss.detach();
}

// The step's forward and backward split where a graph can hold them: the conditioning e (the
// host's timestep sinusoids, the label check and embedding) is made eagerly and copied into the
// recorded work's input; the recorded work (forward_embedded, the loss, the backward) leaves the
// gradient of every parameter it reaches, and of e; the eager backward of e then gives the label
// embedding its gradient. The same kernels on the same values as the op-by-op step.
Tensor Trainer::recorded_step(const NoisedBatch& noised, const Tensor& t, const Tensor& y) {
  Tensor e = model_.embed(t, y, device_);
  Recorded& r = rec_;
  const bool first = !r.graph;
  if (first) {
    r.x_t = Tensor::empty(noised.x_t.shape(), DType::F32, device_);
    r.eps = Tensor::empty(noised.eps.shape(), DType::F32, device_);
    r.e = Tensor::empty(e.shape(), DType::F32, device_).set_requires_grad();
  }
  r.x_t.copy_from(noised.x_t);
  r.eps.copy_from(noised.eps);
  r.e.detach().copy_from(e);
  if (first)
    r.graph = std::make_unique<Graph>(device_, [this] {
      Recorded& in = rec_;
      CastCache::Use copies(optimizer_.weight_copies());
      optimizer_.zero_grad();
      in.e.zero_grad();
      in.loss = mse_loss(model_.forward_embedded(in.x_t, in.e), in.eps);
      in.loss.backward();
    });
  r.graph->replay();
  // Where the recording reads each weight and writes each gradient: the parameters, and the bf16
  // copies of those a bf16 model casts (made during the graph's first, eager run).
  std::vector<Tensor> holders;
  std::vector<size_t> owner;  // the parameter each holder stands for
  for (size_t i = 0; i < params_.size(); ++i) {
    holders.push_back(params_[i]);
    owner.push_back(i);
    if (Tensor copy = optimizer_.weight_copies().find(params_[i]); copy.defined()) {
      holders.push_back(copy);
      owner.push_back(i);
    }
  }
  if (first)
    for (const Tensor& h : holders) {
      r.grads.push_back(h.grad().defined() ? h.grad().raw() : nullptr);
      r.weights.push_back(h.raw());
    }
  DDPM_CHECK(holders.size() == r.grads.size(), "train", "the weight copies changed between recorded steps");
  for (size_t i = 0; i < holders.size(); ++i) {
    // A GPU replay reads the weights and writes the gradients the recording saw: had something
    // replaced them since (zero_grad, a move of the model), the step would silently read stale
    // weights or AdamW skip those parameters. (On the CPU a replay runs the step's code again.)
    const char* what = holders[i].same(params_[owner[i]]) ? "" : "'s bf16 copy";
    DDPM_CHECK(device_ == Device::CPU || holders[i].raw() == r.weights[i], "train", "parameter #", owner[i], what,
               " moved between recorded steps");
    if (!r.grads[i]) {
      holders[i].zero_grad();
    } else if (device_ != Device::CPU) {
      DDPM_CHECK(holders[i].grad().defined() && holders[i].grad().raw() == r.grads[i], "train", "parameter #",
                 owner[i], what, ": its gradient was replaced between recorded steps");
    }
  }
  if (e.requires_grad()) e.backward(r.e.grad());
  return r.loss.detach().clone();  // the recorded loss is overwritten by the next step
}

void Trainer::with_ema_weights(const std::function<void()>& fn) {
  std::vector<Tensor> trained;
  for (const Tensor& p : params_) trained.push_back(p.detach().clone());
  struct Restore {
    std::vector<Tensor>& params;
    std::vector<Tensor>& trained;
    ~Restore() {
      for (size_t i = 0; i < params.size(); ++i) params[i].detach().copy_from(trained[i]);
    }
  } restore{params_, trained};
  for (size_t i = 0; i < params_.size(); ++i) params_[i].detach().copy_from(ema_.shadow()[i]);
  fn();
}

void Trainer::save(const std::string& model_path, const std::map<std::string, std::string>& metadata) const {
  // Host copies of the weights and their EMA, checked before anything is written.
  using Named = std::vector<std::pair<std::string, Tensor>>;
  Named weights = to_pytorch_layout(model_, params_);
  Named tensors = to_pytorch_layout(model_, ema_.shadow(), "ema.");
  for (const Named* list : {&weights, &tensors})
    for (const auto& [name, t] : *list)
      DDPM_CHECK(t.all_finite(), "train", "the weights hold NaN or infinity at step ", step_,
                 " (training diverged): not saved to ", model_path, "; the previous checkpoint is intact");
  std::map<std::string, std::string> common = metadata;
  common["run"] = run_id_;
  common["step"] = str(step_);
  common["image_size"] = str(data_.size);
  common["schedule"] = schedule_name(config_.schedule);
  common["T"] = str(config_.T);
  common["class_names"] = join_names(data_.class_names);

  std::map<std::string, std::string> state = common;
  state["format"] = "ddpm-train-state";
  state["version"] = "1";
  state["epoch"] = str(epoch_);
  state["position"] = str(position_);
  state["generator_offset"] = str(gen_.offset());
  state["batch"] = str(config_.batch);
  state["adamw_lr"] = str(config_.adamw.lr);
  state["adamw_beta1"] = str(config_.adamw.beta1);
  state["adamw_beta2"] = str(config_.adamw.beta2);
  state["adamw_eps"] = str(config_.adamw.eps);
  state["adamw_weight_decay"] = str(config_.adamw.weight_decay);
  state["adamw_steps"] = str(optimizer_.steps());
  state["ema_decay"] = str(config_.ema_decay);
  state["ema_start"] = str(config_.ema_start);
  state["p_uncond"] = str(config_.p_uncond);
  state["seed"] = str(config_.seed);
  state["data_count"] = str(data_.count());
  if (optimizer_.exp_avg().size() == params_.size()) {  // no moments before the first step
    for (auto& nt : to_pytorch_layout(model_, optimizer_.exp_avg(), "adamw.exp_avg.")) tensors.push_back(nt);
    for (auto& nt : to_pytorch_layout(model_, optimizer_.exp_avg_sq(), "adamw.exp_avg_sq.")) tensors.push_back(nt);
  }
  // Both files are written in full before either replaces its old version, so a crash or a kill
  // while writing leaves the previous pair intact. Between the two renames (state first) a crash
  // leaves a state one save ahead of its model and the model's finished .tmp beside it, which
  // finish_interrupted_save puts in place.
  const std::string state_file = state_path(model_path);
  try {
    save_safetensors(state_file, tensors, state, Commit::Later);
    save_safetensors(model_path, weights, model_metadata(model_.config(), common), Commit::Later);
    commit_safetensors(state_file);
  } catch (const Error& e) {  // e.g. a full disk: nothing of this save is in place
    std::remove((state_file + ".tmp").c_str());
    std::remove((model_path + ".tmp").c_str());
    detail::fail("train", e.what(), "; the previous checkpoint is intact");
  }
  try {
    commit_safetensors(model_path);
  } catch (const Error& e) {  // the state is in place, the model's finished .tmp beside it
    detail::fail("train", e.what(), "; the state is saved: `ddpm train --resume` completes the model file");
  }
}

bool finish_interrupted_save(const std::string& model_path) {
  const std::string tmp = model_path + ".tmp", state = state_path(model_path);
  if (!std::filesystem::is_regular_file(tmp) || !std::filesystem::is_regular_file(state)) return false;
  // "step" and "run" of a file; empty for a missing, unfinished or foreign one.
  const auto id_of = [](const std::string& path) {
    try {
      const auto m = load_safetensors(path).metadata;
      return m.at("step") + "/" + (m.count("run") ? m.at("run") : std::string());
    } catch (const std::exception&) {
      return std::string();
    }
  };
  const std::string state_id = id_of(state);
  // The model file may be missing: a crash between the renames of a run's first (step 0) save.
  if (state_id.empty() || id_of(model_path) == state_id || id_of(tmp) != state_id) return false;
  commit_safetensors(model_path);
  return true;
}

void Trainer::load_state(const std::string& model_path) {
  const std::string path = state_path(model_path);
  DDPM_CHECK(std::filesystem::is_regular_file(path), "checkpoint", path, ": training state file not found");
  SafeTensors file = load_safetensors(path);
  const auto& m = file.metadata;
  TrainConfig saved = train_config_from_state(m, path);
  DDPM_CHECK(saved.seed == config_.seed && saved.batch == config_.batch && saved.T == config_.T &&
                 saved.schedule == config_.schedule,
             "checkpoint", path, ": saved with a different seed, batch, T or schedule than this trainer's");
  const auto model_meta = load_safetensors(model_path).metadata;
  const std::string model_step = metadata_value(model_meta, "step", model_path);
  DDPM_CHECK(model_step == metadata_value(m, "step", path), "checkpoint", model_path, " (step ", model_step,
             ") and ", path, " (step ", metadata_value(m, "step", path), ") are from different steps");
  check_same_run(model_meta, m, model_path, path);
  if (m.count("data_count"))  // files of earlier versions have none
    DDPM_CHECK(metadata_int(m, "data_count", path) == data_.count(), "checkpoint", path, ": the run was saved with ",
               m.at("data_count"), " training images, the data now has ", data_.count(),
               " (resuming needs the same data: its shuffles depend on the count)");

  std::vector<Tensor> shadow;
  for (const Tensor& p : params_) shadow.push_back(Tensor::empty(p.shape(), DType::F32, device_));
  from_pytorch_layout(model_, file, shadow, "ema.");
  ema_.load_state(shadow);
  const int64_t adam_steps = metadata_int(m, "adamw_steps", path);
  std::vector<Tensor> mom, var;
  for (const Tensor& p : params_) {
    mom.push_back(Tensor::zeros(p.shape(), DType::F32, device_));
    var.push_back(Tensor::zeros(p.shape(), DType::F32, device_));
  }
  if (adam_steps > 0) {
    from_pytorch_layout(model_, file, mom, "adamw.exp_avg.");
    from_pytorch_layout(model_, file, var, "adamw.exp_avg_sq.");
    for (const Tensor& v : var)  // a mean of squares: a negative one is a corrupt file, not a divergence
      for (float x : v.to_floats())
        DDPM_CHECK(x >= 0.0f, "checkpoint", path, ": adamw.exp_avg_sq holds negative values (a corrupt file)");
  }
  optimizer_.load_state(mom, var, adam_steps);  // also makes the weight copies again from the loaded weights
  step_ = metadata_int(m, "step", path);
  epoch_ = metadata_int(m, "epoch", path);
  position_ = metadata_int(m, "position", path);
  DDPM_CHECK(step_ >= 0 && epoch_ >= 0 && position_ >= 0 && position_ <= data_.count(), "checkpoint", path,
             ": step, epoch or position out of range for ", data_.count(), " images");
  order_.clear();
  gen_.set_offset(unsigned_number(m, "generator_offset", path));
  if (m.count("run")) run_id_ = m.at("run");
}

bool load_ema_weights(UNet& model, const std::string& model_path) {
  const std::string path = state_path(model_path);
  if (!std::filesystem::is_regular_file(path)) return false;
  SafeTensors file;
  std::map<std::string, std::string> model_meta;
  std::string model_step, state_step;
  // A run that is training may commit a save between the two reads: then the next try sees both new.
  for (int attempt = 0; attempt < 3 && (attempt == 0 || model_step != state_step); ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(500));
    file = load_safetensors(path);
    model_meta = load_safetensors(model_path).metadata;
    model_step = metadata_value(model_meta, "step", model_path);
    state_step = metadata_value(file.metadata, "step", path);
  }
  DDPM_CHECK(model_step == state_step, "checkpoint", path, " (step ", state_step, ") does not belong to ", model_path,
             " (step ", model_step, "): a save was interrupted (`ddpm train --resume --out DIR --steps N` ",
             "completes it) or the files were mixed; --no-ema uses the model file alone");
  check_same_run(model_meta, file.metadata, model_path, path);
  std::vector<Tensor> params = model.parameters(), ema;
  for (const Tensor& p : params) ema.push_back(Tensor::empty(p.shape(), DType::F32, p.device()));
  from_pytorch_layout(model, file, ema, "ema.");
  for (size_t i = 0; i < params.size(); ++i) params[i].detach().copy_from(ema[i]);
  return true;
}

}  // namespace ddpm
