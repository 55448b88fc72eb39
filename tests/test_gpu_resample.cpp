// concat_channels, max_pool2x2, upsample2x and embedding on the GPU against the CPU (outputs and
// gradients): channel counts that are not multiples of 4 (scalar path), sizes that do not fill a
// block, in == 1 for the upsample, and the model's shapes.
#include "gpu_helpers.hpp"

using namespace ddpm;
using namespace ddpm::test;

TEST_CASE("gpu: concat_channels matches the CPU", "[gpu][resample]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  auto f = [](const std::vector<Tensor>& in) { return concat_channels(in[0], in[1]); };
  compare_backends(f, {randn({3, 5, 7, 3}, gen), randn({3, 5, 7, 5}, gen)}, gen);
  compare_backends(f, {randn({1, 1, 1, 4}, gen), randn({1, 1, 1, 1}, gen)}, gen);
  compare_backends(f, {randn({2, 32, 32, 64}, gen), randn({2, 32, 32, 64}, gen)}, gen);  // up3's [skip, upsampled]
  compare_backends(f, {randn({2, 8, 8, 256}, gen), randn({2, 8, 8, 256}, gen)}, gen);
}

TEST_CASE("gpu: max_pool2x2 matches the CPU", "[gpu][resample]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  auto f = [](const std::vector<Tensor>& in) { return max_pool2x2(in[0]); };
  for (Shape s :
       {Shape{3, 6, 10, 7}, Shape{1, 2, 2, 1}, Shape{2, 4, 2, 12}, Shape{2, 32, 32, 128}, Shape{2, 64, 64, 64}})
    compare_backends(f, {randn(s, gen)}, gen);
}

TEST_CASE("gpu: upsample2x matches the CPU", "[gpu][resample]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  auto f = [](const std::vector<Tensor>& in) { return upsample2x(in[0]); };
  for (Shape s : {Shape{3, 5, 7, 9}, Shape{1, 1, 1, 3}, Shape{2, 1, 6, 4}, Shape{2, 5, 1, 8}, Shape{2, 32, 32, 128},
                  Shape{4, 8, 8, 256}})
    compare_backends(f, {randn(s, gen)}, gen);
}

TEST_CASE("gpu: embedding matches the CPU", "[gpu][resample]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  auto f = [](const std::vector<Tensor>& in) { return embedding(in[0], in[1]); };
  // Class labels of a batch of 64 into the 10 x 256 label table (repeats accumulate), and an odd size.
  std::vector<int64_t> labels, odd;
  std::vector<float> u = Tensor::rand({64}, gen).to_floats();
  for (float v : u) labels.push_back(int64_t(v * 10));
  for (int64_t i = 0; i < 7; ++i) odd.push_back((i * 3) % 5);
  compare_backends(f, {Tensor::from_ints(labels, {64}), randn({10, 256}, gen)}, gen);
  compare_backends(f, {Tensor::from_ints(odd, {7}), randn({5, 13}, gen)}, gen);
  // Ids are checked on the host even when they live on the GPU.
  CHECK_THROWS_WITH(embedding(Tensor::from_ints({2, 10}, {2}, Device::CUDA), randn({10, 4}, gen).to(Device::CUDA)),
                    Catch::Contains("id 10"));
  // Ids on the host with the table on the GPU, as the sampler keeps its labels: the same output and
  // table gradient (f takes the ids back to the host on the GPU run); a bad host id is caught; ids on
  // the GPU with the table on the host are refused.
  auto host_ids = [](const std::vector<Tensor>& in) { return embedding(in[0].to(Device::CPU), in[1]); };
  compare_backends(host_ids, {Tensor::from_ints(labels, {64}), randn({10, 256}, gen)}, gen);
  CHECK_THROWS_WITH(embedding(Tensor::from_ints({2, 10}, {2}), randn({10, 4}, gen).to(Device::CUDA)),
                    Catch::Contains("id 10"));
  CHECK_THROWS_WITH(embedding(Tensor::from_ints({1, 2}, {2}, Device::CUDA), randn({10, 4}, gen)),
                    Catch::Contains("on the host or on the table's device"));
}
