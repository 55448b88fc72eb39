// `ddpm eval`: sample quality of a trained Fashion-MNIST model, measured with the classifier of
// assets/classifier.safetensors (docs/quality.md): conditional accuracy (overall and per class)
// and the Fréchet distance of classifier features to the test split, next to the same numbers for
// real training images (the floor) and uniform noise (the ceiling) at the same N. Writes a table
// to stdout, optionally JSON, and a PNG grid of the samples the classifier found least like their
// class.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "diffusion/data.hpp"
#include "diffusion/image_io.hpp"
#include "diffusion/quality.hpp"
#include "tools/cli_common.hpp"
#include "tools/commands.hpp"

namespace ddpm::cli {
namespace {

struct EvalOptions {
  SamplingOptions s;
  int64_t samples = 1000;
  std::string classifier = kClassifierAsset;
  std::string data_dir = kFashionMnistDir;
  std::string out = "eval";
  std::string json;
  int64_t worst = 64;
};

// The real-data floor and the noise ceiling draw from this offset of the seed's stream, away
// from the sampler's numbers (offset 0 on).
constexpr uint64_t kCalibrationOffset = uint64_t(1) << 44;

void run(const EvalOptions& o) {
  const Device device = apply_device_options(o.s.dev);
  // The outputs' folders first: sampling may take minutes.
  if (!o.json.empty()) check_output_file(o.json);
  if (o.worst > 0) {
    if (std::filesystem::exists(o.out)) {
      DDPM_CHECK(std::filesystem::is_directory(o.out), "eval", "--out ", o.out, " is a file; worst.png needs a folder");
      check_output_file(o.out + "/worst.png");
    } else {
      check_output_file(o.out);  // its parent takes the folder, made when worst.png is written
    }
    if (!o.json.empty()) check_distinct(o.json, o.out + "/worst.png");
  }
  LoadedClassifier clf = load_classifier(asset_path(o.classifier), device);
  const ClassifierConfig& cc = clf.model->config();
  LoadedModel m = load_checkpoint(o.s.checkpoint, device, o.s.dev.precision, o.s.image_size, !o.s.no_ema);
  std::vector<std::string> outputs;
  if (!o.json.empty()) outputs.push_back(o.json);
  if (o.worst > 0) outputs.push_back(o.out + "/worst.png");
  for (const std::string& out : outputs) {  // neither may replace an input
    check_not_checkpoint(out, m);
    check_distinct(out, asset_path(o.classifier));
  }
  const UNetConfig& mc = m.model->config();
  DDPM_CHECK(mc.out_channels == 1 && m.image_size == cc.image_size, "eval", "the classifier measures ",
             cc.image_size, "x", cc.image_size, "x1 images; ", m.path, " makes ", m.image_size, "x", m.image_size, "x",
             mc.out_channels, " (eval is for Fashion-MNIST models)");
  DDPM_CHECK(mc.num_classes == cc.num_classes, "eval", m.path, " has ", mc.num_classes,
             " classes; conditional accuracy needs a model conditioned on the classifier's ", cc.num_classes);
  const int64_t k = cc.num_classes;
  DDPM_CHECK(o.samples % k == 0, "eval", "--samples ", o.samples, " must be a multiple of the ", k,
             " classes (class-balanced sets)");
  const int64_t per_class = o.samples / k;
  if (o.samples < 2 * cc.feature_dim)
    std::fprintf(stderr, "note: %ld samples for %ld-d features: the FDs below rest on a poorly estimated "
                 "covariance; compare them only at equal N, and prefer --samples 1000 or more\n",
                 long(o.samples), long(cc.feature_dim));

  const SamplerConfig config = sampler_config(o.s);
  const Schedule schedule = sampling_schedule(o.s, m);
  const int64_t steps = int64_t(sampler_plan(schedule, config).size());
  std::fprintf(stderr, "%s (%s weights), %s sampler, %ld steps, guidance %g, seed %lu: %ld samples on %s\n",
               m.path.c_str(), m.ema ? "EMA" : "trained", o.s.sampler.c_str(), long(steps), double(config.guidance),
               (unsigned long)o.s.seed, long(o.samples), device_name(device));

  // Reference: the classifier features of the whole test split.
  const Dataset test = load_fashion_mnist(o.data_dir, "t10k");
  std::vector<int64_t> all(static_cast<size_t>(test.count()));
  for (int64_t i = 0; i < test.count(); ++i) all[size_t(i)] = i;
  const GaussianFit reference = fit_gaussian(classify(*clf.model, test.batch(all, Device::CPU).images).features);

  // The real images of the floor, chosen before sampling: a data folder that lacks them fails now.
  Generator calib(o.s.seed, kCalibrationOffset);
  const Dataset train = load_fashion_mnist(o.data_dir, "train");
  const std::vector<int64_t> floor_images = balanced_indices(train, per_class, calib);

  std::vector<int64_t> classes, labels;
  for (int64_t c = 0; c < k; ++c) {
    classes.push_back(c);
    labels.insert(labels.end(), size_t(per_class), c);
  }
  const Tensor x = sample_classes(*m.model, schedule, config, classes, per_class, m.image_size, o.s.seed, device,
                                  o.s.batch);
  DDPM_CHECK(x.dim() == 4 && x.size(1) == cc.image_size && x.size(2) == cc.image_size && x.size(3) == 1, "eval",
             "samples are ", x.desc(), "; the classifier needs [N, ", cc.image_size, ", ", cc.image_size, ", 1]");
  const SetQuality q = measure_set(*clf.model, x, labels, reference);

  const SetQuality floor = measure_set(*clf.model, train.batch(floor_images, Device::CPU).images, labels, reference);
  const SetQuality noise = measure_set(*clf.model, noise_images(o.samples, cc.image_size, calib), labels, reference);

  std::printf("N = %ld per set (%ld per class); reference: %ld test images; FD on %ld-d classifier features\n\n",
              long(o.samples), long(per_class), long(test.count()), long(cc.feature_dim));
  std::printf("%-28s %10s %10s\n", "set", "accuracy", "FD");
  std::printf("%-28s %10.4f %10.3f\n", "samples", q.accuracy.overall, q.fd);
  std::printf("%-28s %10.4f %10.3f\n", "real train images (floor)", floor.accuracy.overall, floor.fd);
  std::printf("%-28s %10s %10.3f\n\n", "uniform noise (ceiling)", "-", noise.fd);
  std::printf("%-28s %10s %10s\n", "per-class accuracy", "samples", "real");
  for (int64_t c = 0; c < k; ++c)
    std::printf("  %d %-24s %10.4f %10.4f\n", int(c), test.class_names[size_t(c)].c_str(),
                q.accuracy.per_class[size_t(c)], floor.accuracy.per_class[size_t(c)]);

  const std::vector<int64_t> worst = worst_indices(q.label_prob, o.worst);
  nlohmann::ordered_json worst_json = nlohmann::ordered_json::array();
  std::vector<float> worst_pixels;
  const std::vector<float> xv = x.to_floats();
  const size_t per_image = size_t(cc.image_size * cc.image_size);
  for (int64_t i : worst) {
    worst_pixels.insert(worst_pixels.end(), xv.begin() + i * per_image, xv.begin() + (i + 1) * per_image);
    worst_json.push_back({{"index", i}, {"class", labels[size_t(i)]}, {"p_class", q.label_prob[size_t(i)]}});
  }
  if (!worst.empty()) {
    std::filesystem::create_directories(o.out);
    const std::string png = o.out + "/worst.png";
    const Shape shape{int64_t(worst.size()), cc.image_size, cc.image_size, 1};
    write_png(png, image_grid(Tensor::from_floats(worst_pixels, shape), 8));
    std::printf("\nwrote %s: the %zu samples with the lowest p(asked class), lowest first, 8 per row\n", png.c_str(),
                worst.size());
  }

  if (!o.json.empty()) {
    nlohmann::ordered_json per_class_json = nlohmann::ordered_json::object();
    for (int64_t c = 0; c < k; ++c)
      per_class_json[test.class_names[size_t(c)]] = {{"samples", q.accuracy.per_class[size_t(c)]},
                                                      {"real", floor.accuracy.per_class[size_t(c)]}};
    nlohmann::ordered_json j = {
        {"checkpoint", m.path},
        {"weights", m.ema ? "ema" : "trained"},
        {"sampler", o.s.sampler},
        {"steps", steps},
        {"eta", o.s.eta},
        {"guidance", config.guidance},
        {"seed", o.s.seed},
        {"samples", o.samples},
        {"classifier", o.classifier},
        {"reference_images", test.count()},
        {"accuracy", q.accuracy.overall},
        {"fd", q.fd},
        {"floor", {{"accuracy", floor.accuracy.overall}, {"fd", floor.fd}}},
        {"ceiling", {{"fd", noise.fd}}},
        {"per_class_accuracy", per_class_json},
        {"worst", worst_json}};
    std::ofstream f(o.json);
    f << j.dump(2) << "\n";
    f.close();
    DDPM_CHECK(!f.fail(), "eval", "cannot write ", o.json);
    std::printf("wrote %s\n", o.json.c_str());
  }
}

}  // namespace

void add_eval(CLI::App& app) {
  auto o = std::make_shared<EvalOptions>();
  CLI::App* cmd = app.add_subcommand("eval", "Measure sample quality: conditional accuracy and FD (docs/quality.md)");
  add_sampling_options(cmd, o->s);
  cmd->add_option("--samples", o->samples, "images to generate (a multiple of the classes; >= 1000 for a stable FD)")
      ->check(positive())
      ->capture_default_str();
  cmd->add_option("--classifier", o->classifier, "classifier weights")->capture_default_str();
  cmd->add_option("--data-dir", o->data_dir, "folder of the Fashion-MNIST IDX .gz files")->capture_default_str();
  cmd->add_option("--out", o->out, "folder for worst.png")->capture_default_str();
  cmd->add_option("--json", o->json, "also write the results as JSON to this file");
  cmd->add_option("--worst", o->worst, "samples in the worst-classified grid (0 = none)")
      ->check(non_negative())
      ->capture_default_str();
  cmd->callback([o] { run(*o); });
}

}  // namespace ddpm::cli
