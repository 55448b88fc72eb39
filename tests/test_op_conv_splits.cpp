// The split-K choice of our convolution GEMMs (kernels/conv_cuda_detail.hpp, split_count) at the
// model's shapes, against what the napkin math of each case says it must do: no split where the
// tiles already fill the GPU in full waves, about one full wave where they are few, a partly empty
// last wave avoided where that is cheap, and never more parts than allowed. Host-only arithmetic:
// it runs without a GPU.
#include "helpers.hpp"
#include "kernels/conv_cuda_detail.hpp"

using ddpm::kernels::cuda::conv_detail::split_count;

namespace {

// How full the grid's waves are: blocks over (waves x resident).
double wave_fill(int64_t tiles, int64_t splits, int64_t resident) {
  const int64_t blocks = tiles * splits, waves = (blocks + resident - 1) / resident;
  return double(blocks) / double(waves * resident);
}

}  // namespace

TEST_CASE("split-K: no split when the output tiles fill the GPU in full waves", "[conv][splits]") {
  // Forward of 3x3 64->64 at 64x64, batch 64: 2048 tiles of 128 x 64, 264 resident (2 per SM).
  CHECK(split_count(262144, 64, 576, 128, 64, 264, 1024) == 1);
  // 16x16, 256 -> 256 (128 x 128 tiles, 132 resident): 256 tiles, two waves of 97%.
  CHECK(split_count(16384, 256, 2304, 128, 128, 132, 9) == 1);
}

TEST_CASE("split-K: few tiles and a long K fill about one wave", "[conv][splits]") {
  // Filter gradient of 3x3 64->64 at 64x64: M = 576, N = 64, K = 262,144 pixels: 5 tiles.
  const int64_t s = split_count(576, 64, 262144, 128, 64, 264, 1024);
  CAPTURE(s);
  CHECK(5 * s >= 0.9 * 264);
  CHECK(5 * s <= 264);  // one wave, not a second that is nearly empty
  // The first layer's filter gradient: one tile (M = 27), K = 262,144.
  const int64_t first = split_count(27, 64, 262144, 128, 64, 264, 1024);
  CAPTURE(first);
  CHECK(first >= 0.9 * 264);
  CHECK(first <= 264);
}

TEST_CASE("split-K: a second, mostly empty wave is split away when the partial sums are cheap", "[conv][splits]") {
  // Filter gradient of 3x3 512->512 at 16x16, batch 64: M = 4608, N = 512, K = 16,384: 144 tiles of
  // 128 x 128 on 132 resident blocks. Unsplit, the second wave holds 12 blocks (waves 55% full);
  // the partial sums (4608 x 512 floats, 9 MB a part) cost little next to 77 GFLOP.
  const int64_t s = split_count(4608, 512, 16384, 128, 128, 132, 64);
  CAPTURE(s, wave_fill(144, s, 132));
  CHECK(s > 1);
  CHECK(wave_fill(144, s, 132) > 0.85);
  // Forward of 3x3 256->256 at 8x8, batch 64: M = 4096, N = 256, K = 2304: 64 tiles. Three parts
  // (the old rule: enough to fill 132) make 192 blocks, two waves; two parts make one full wave.
  CHECK(split_count(4096, 256, 2304, 128, 128, 132, 9) == 2);
}

TEST_CASE("split-K: the partial sums' traffic keeps a short K unsplit", "[conv][splits]") {
  // Forward of 3x3 512->512 at 16x16 with 128 x 128 tiles: 512 tiles, 3.9 waves of 132: splitting
  // would add 4 bytes x 8.4M outputs per part for at most a few percent of idle SMs.
  CHECK(split_count(16384, 512, 4608, 128, 128, 132, 18) == 1);
}

TEST_CASE("split-K: never more parts than allowed, at least one", "[conv][splits]") {
  for (int64_t max_splits : {1, 2, 7}) {
    const int64_t s = split_count(27, 64, 262144, 128, 64, 264, max_splits);
    CAPTURE(max_splits, s);
    CHECK(s >= 1);
    CHECK(s <= max_splits);
  }
  CHECK(split_count(27, 64, 262144, 128, 64, 264, 0) == 1);  // nothing allowed: one part
}
