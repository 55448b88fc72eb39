// Training (DDPM Algorithm 1 with the seed's recipe) and training checkpoints.
//
// One step: take the next batch (x0, y) of a per-epoch shuffle; draw t uniform in [1, T-1];
// x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps (engine q_sample); with probability p_uncond drop
// the whole batch's labels (the unconditional branch classifier-free guidance needs); loss =
// mse(model(x_t, t, y), eps); backward; AdamW step; EMA update. All randomness comes from one
// Generator (seed, offset), so a run is a pure function of its seed.
//
// A checkpoint is two safetensors files: the model (model/checkpoint.hpp, PyTorch names and layout)
// and beside it, "<name>.state.safetensors" with everything needed to continue bit-exactly:
// the EMA weights ("ema.<name>"), the AdamW moments ("adamw.exp_avg.<name>",
// "adamw.exp_avg_sq.<name>"), and in the metadata the step, the generator's offset, the position in
// the data order, the data's image count and the TrainConfig. Both files carry the step and the
// run's random id, so a mismatched pair is refused. Both are written in full (temporary files)
// before either is renamed into place (model/safetensors.hpp, Commit::Later).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "diffusion/data.hpp"
#include "diffusion/schedule.hpp"
#include "engine/graph.hpp"
#include "engine/noise.hpp"
#include "engine/optim.hpp"
#include "engine/rng.hpp"
#include "model/unet.hpp"

namespace ddpm {

struct TrainConfig {
  int64_t batch = 14;
  AdamWConfig adamw;       // lr 3e-4, weight decay 0.01, PyTorch's betas and eps
  float ema_decay = 0.995f;
  int64_t ema_start = 2000;  // steps before this copy the weights into the EMA
  float p_uncond = 0.1f;     // probability that a batch trains the unconditional branch
  uint64_t seed = 0;
  ScheduleKind schedule = ScheduleKind::Linear;
  int64_t T = 1000;
  // Record the network's forward, loss and backward once as a graph and replay it each step
  // (engine/graph.hpp): the same numbers, far fewer launches on a GPU. A run option, not saved.
  bool graph = false;
};

// The generator a model's initial weights come from, independent of the training stream.
Generator model_init_generator(uint64_t seed);

// The state file that goes with a model file: "a/model.safetensors" -> "a/model.state.safetensors".
std::string state_path(const std::string& model_path);

class Trainer {
 public:
  // Trains `model` (on the device of its parameters) on `data`; both must outlive the trainer.
  Trainer(UNet& model, const Dataset& data, const TrainConfig& config);
  // A recorded step (config.graph) refers to this trainer: it stays where it was made.
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // One training step; returns its loss, a one-element tensor on the training device. The step is
  // only queued on a GPU: reading the loss (item()) waits for it, so read it when it is needed (the
  // log), not every step, and the host queues the next steps meanwhile.
  Tensor step();
  int64_t steps_done() const { return step_; }
  int64_t epoch() const { return epoch_; }
  const TrainConfig& config() const { return config_; }

  // Runs fn with the EMA weights in the model, then puts the trained weights back.
  void with_ema_weights(const std::function<void()>& fn);

  // Writes the model file and its state file; `metadata` goes into both (e.g. the data spec),
  // with the run's id, so that a model and a state from different runs are told apart. Refuses
  // (ddpm::Error, nothing written) weights that hold NaN or infinity: a diverged run keeps its
  // last good checkpoint.
  void save(const std::string& model_path, const std::map<std::string, std::string>& metadata = {}) const;
  // Restores the state saved beside `model_path`; the model's weights must already be that file's.
  // The data must be the run's (the same number of images: the shuffles depend on it).
  void load_state(const std::string& model_path);

 private:
  std::vector<int64_t> next_batch_indices();
  Tensor recorded_step(const NoisedBatch& noised, const Tensor& t, const Tensor& y);

  UNet& model_;
  const Dataset& data_;
  TrainConfig config_;
  Device device_;
  Schedule schedule_;
  Tensor sqrt_abar_, sqrt_1m_abar_;
  std::vector<Tensor> params_;
  AdamW optimizer_;
  EMA ema_;
  Generator gen_;
  std::string run_id_;  // random per run; kept across resumes
  int64_t step_ = 0;
  int64_t epoch_ = 0, position_ = 0;  // next batch starts at order_[position_] of epoch_
  std::vector<int64_t> order_;        // epoch_'s shuffle of the data

  // config_.graph: the recorded part of a step, its inputs (filled each step) and its loss, and
  // which parameters get their gradient from it (the others, the label embedding's, from the
  // eager rest of the step).
  struct Recorded {
    Tensor x_t, eps, e, loss;
    std::unique_ptr<Graph> graph;
    // Per parameter, and after it its bf16 weight copy if it has one (engine/optim.hpp):
    std::vector<const void*> grads;    // where the recording writes its gradient, or null
    std::vector<const void*> weights;  // where the recording reads it
  };
  Recorded rec_;
};

// Metadata of a state file: the TrainConfig it was saved with (throws naming the file if absent).
TrainConfig train_config_from_state(const std::map<std::string, std::string>& metadata, const std::string& path);

// Completes a save that a crash interrupted between its two renames (Trainer::save): when the
// state is one save ahead of the model and the model's finished .tmp matches it, the .tmp becomes
// the model file. True if it did. Call before loading a run to resume it.
bool finish_interrupted_save(const std::string& model_path);

// Copies the EMA weights saved beside `model_path` into the model; false (and no change) when
// there is no state file. Throws when the state is from another step than the model file.
bool load_ema_weights(UNet& model, const std::string& model_path);

// Metadata helpers: a required value (the error names the file and key), and class-name lists.
std::string metadata_value(const std::map<std::string, std::string>& metadata, const std::string& key,
                           const std::string& path);
int64_t metadata_int(const std::map<std::string, std::string>& metadata, const std::string& key,
                     const std::string& path);
std::string join_names(const std::vector<std::string>& names);  // a JSON array of strings
std::vector<std::string> split_names(const std::string& json, const std::string& path);

}  // namespace ddpm
