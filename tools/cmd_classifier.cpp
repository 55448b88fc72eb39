// `ddpm classifier train|test`: the Fashion-MNIST classifier that `ddpm eval` measures samples
// with (model/classifier.hpp, diffusion/quality.hpp). `train` fits it on the official train split
// and reports and records its accuracy on the official test split; `test` re-measures a file.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "diffusion/data.hpp"
#include "diffusion/quality.hpp"
#include "tools/cli_common.hpp"
#include "tools/commands.hpp"

namespace ddpm::cli {
namespace {

struct ClassifierOptions {
  std::string data_dir = kFashionMnistDir;
  ClassifierConfig model;
  ClassifierTraining train;
  std::string out = "classifier.safetensors";  // not the committed one: replacing that is a choice
  std::string weights = kClassifierAsset;
  DeviceOptions dev;
};

// Overall and per-class accuracy of `model` on the test split; prints a table, returns overall.
double report_test_accuracy(const Classifier& model, const std::string& dir) {
  const Dataset test = load_fashion_mnist(dir, "t10k");
  std::vector<int64_t> all(static_cast<size_t>(test.count()));
  for (int64_t i = 0; i < test.count(); ++i) all[size_t(i)] = i;
  const Classification c = classify(model, test.batch(all, Device::CPU).images);
  const Accuracy a = accuracy(c.predicted, test.labels, test.num_classes());
  std::printf("test accuracy %.4f on %ld images of %s/t10k\n", a.overall, long(test.count()), dir.c_str());
  for (int64_t k = 0; k < test.num_classes(); ++k)
    std::printf("  %d %-12s %.4f\n", int(k), test.class_names[size_t(k)].c_str(), a.per_class[size_t(k)]);
  return a.overall;
}

void train(const ClassifierOptions& o) {
  const Device device = apply_device_options(o.dev);
  check_output_file(o.out, true);
  const Dataset data = load_fashion_mnist(o.data_dir, "train");
  Generator init(o.train.seed);
  Classifier model(o.model, init);
  model.to(device);
  std::fprintf(stderr, "classifier width %ld, features %ld: %ld parameters | %ld training images, %s, batch %ld, "
               "%ld epochs\n", long(o.model.width), long(o.model.feature_dim), long(model.parameter_count()),
               long(data.count()), device_name(device), long(o.train.batch), long(o.train.epochs));
  const auto start = std::chrono::steady_clock::now();
  Progress progress("step", (data.count() / o.train.batch) * o.train.epochs, 0, double(o.train.batch), "img");
  double loss_sum = 0;
  int64_t loss_count = 0;
  train_classifier(model, data, o.train, [&](int64_t step, int64_t, float loss) {
    DDPM_CHECK(std::isfinite(loss), "classifier", "the loss of step ", step, " is ", loss,
               ": training diverged (a smaller --lr?); nothing saved");
    loss_sum += loss;
    ++loss_count;
    progress.update(step, [&] {
      char buf[32];
      std::snprintf(buf, sizeof buf, "loss %.4f", loss_sum / double(loss_count));
      loss_sum = 0;
      loss_count = 0;
      return std::string(buf);
    });
  });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double acc = report_test_accuracy(model, o.data_dir);
  std::ostringstream command;
  command << "ddpm classifier train --epochs " << o.train.epochs << " --batch " << o.train.batch << " --lr "
          << o.train.adamw.lr << " --weight-decay " << o.train.adamw.weight_decay << " --width " << o.model.width
          << " --feature-dim " << o.model.feature_dim << " --seed " << o.train.seed;
  char acc_str[16];
  std::snprintf(acc_str, sizeof acc_str, "%.4f", acc);
  save_classifier(o.out, model,
                  {{"test_accuracy", acc_str}, {"command", command.str()}, {"data", "fashion-mnist train split"},
                   {"train_seconds", std::to_string(int64_t(seconds))}});
  std::fprintf(stderr, "wrote %s (trained in %s)\n", o.out.c_str(), format_duration(seconds).c_str());
}

void test(const ClassifierOptions& o) {
  const LoadedClassifier l = load_classifier(asset_path(o.weights), apply_device_options(o.dev));
  auto stated = l.metadata.find("test_accuracy");
  std::printf("%s: stated test accuracy %s\n", o.weights.c_str(),
              stated == l.metadata.end() ? "(none)" : stated->second.c_str());
  report_test_accuracy(*l.model, o.data_dir);
}

}  // namespace

void add_classifier(CLI::App& app) {
  auto o = std::make_shared<ClassifierOptions>();
  CLI::App* cmd = app.add_subcommand("classifier", "The Fashion-MNIST classifier that `ddpm eval` measures with");
  cmd->require_subcommand(1, 1);
  CLI::App* tr = cmd->add_subcommand("train", "Train it on the train split; report test accuracy; save");
  tr->add_option("--epochs", o->train.epochs, "passes over the 60000 training images")
      ->check(in_range(1, 1000))
      ->capture_default_str();
  tr->add_option("--batch", o->train.batch, "images per step")->check(positive())->capture_default_str();
  tr->add_option("--lr", o->train.adamw.lr, "AdamW peak learning rate (cosine decay to 0)")
      ->check(positive())
      ->capture_default_str();
  tr->add_option("--weight-decay", o->train.adamw.weight_decay, "AdamW weight decay")
      ->check(non_negative())
      ->capture_default_str();
  tr->add_option("--width", o->model.width, "channels of the first stage (a multiple of 8)")
      ->check(positive())
      ->capture_default_str();
  tr->add_option("--feature-dim", o->model.feature_dim, "size of the feature vector the FD is computed on")
      ->check(positive())
      ->capture_default_str();
  tr->add_option("--seed", o->train.seed, "random seed (weights and data order)")
      ->check(seed_check())
      ->capture_default_str();
  tr->add_option("--out", o->out, "weights file (safetensors)")->capture_default_str();
  CLI::App* te = cmd->add_subcommand("test", "Measure a weights file on the test split");
  te->add_option("--classifier", o->weights, "weights file")->capture_default_str();
  for (CLI::App* sub : {tr, te}) {
    sub->add_option("--data-dir", o->data_dir, "folder of the Fashion-MNIST IDX .gz files")->capture_default_str();
    add_device_options(sub, o->dev, false);  // the classifier runs in f32
  }
  tr->callback([o] { train(*o); });
  te->callback([o] { test(*o); });
}

}  // namespace ddpm::cli
