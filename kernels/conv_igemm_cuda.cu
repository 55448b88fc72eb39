// CUDA convolution, our implicit-GEMM tensor-core kernels (the kernels and their index math:
// kernels/conv_igemm.cuh, v4 on mma.sync, and kernels/conv_wgmma.cuh, v6 on Hopper's wgmma, bf16
// only). This file picks the kernel, the block tile and the K split of each call and launches; it
// is backend Ours behind kernels/conv.hpp's functions: TF32 for f32 data, bf16.
//
// Napkin math, 3x3 64->64 at 64x64, batch 64 (P = 262,144 pixels, K = 576):
//   19.3 GFLOP per pass. At the H200's measured dense peaks that is 47 us in TF32 (415 TFLOP/s)
//   and 24 us in bf16 (796 TFLOP/s); mma.sync kernels of this kind usually reach 50-70% of them.
//   Bytes: x in and y out, 67 MB each in f32 (each x element is read by 9 taps, but the 128-pixel
//   tiles of neighbouring blocks overlap, so the re-reads come from L2): ~32 us at 4.2 TB/s, so the
//   f32 forward is compute-bound (about 140 FLOP per byte against a ridge of ~100); bf16 halves
//   the bytes and sits near the ridge.
//   Tiles: M = P = 262,144 rows in 2,048 tiles of 128 x 64 (N = 64), each 18 K tiles of 32.
//   The filter gradient of the same layer is M = 576, N = 64, K = 262,144: 5 output tiles, so
//   its K is split ~50 ways (one wave; split_count) and 50 x 576 x 64 x 4 B = 7.4 MB of partial
//   sums are added by reduce_splits (~3 us).
//   Shared memory per stage: 128 x 144 B per K-major tile of 128 rows, 32 x 136 x 4 B per MN-major
//   one; 3 stages of a 128 x 128 block take 108 KB, so two blocks fit on an H100/H200 SM.
#include <algorithm>
#include <climits>
#include <cstdlib>
#include <map>
#include <string_view>
#include <type_traits>

#include "kernels/conv_cuda_detail.hpp"
#include "kernels/conv_igemm.cuh"
#include "kernels/conv_wgmma.cuh"
#include "kernels/cuda_launch.cuh"

namespace ddpm::kernels::cuda {
namespace {

using namespace igemm;

// Split-K partial sums take at most this much workspace (fewer splits beyond it).
constexpr int64_t kMaxPartialBytes = int64_t(256) << 20;
// Each split multiplies at least this many K tiles, so the pipeline's fill and drain stay small.
constexpr int64_t kMinTilesPerSplit = 4;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// An attribute of the current GPU (the engine uses one GPU per process, so callers cache it).
int device_attribute(cudaDeviceAttr attr) {
  int device = 0, value = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  CUDA_CHECK(cudaDeviceGetAttribute(&value, attr, device));
  return value;
}

int sm_count() {
  static const int n = device_attribute(cudaDevAttrMultiProcessorCount);
  return n;
}

// The most dynamic shared memory one block may ask for: 227 KB on an H100/H200, 163 KB on an
// A100, 99 KB on the sm_86/89/120 cards that run this build's sm_80 code.
int max_block_smem() {
  static const int n = device_attribute(cudaDevAttrMaxSharedMemoryPerBlockOptin);
  return n;
}

// Blocks of `kernel` (with `threads` threads and `smem` bytes of shared memory) the GPU holds at
// once; the first call per kernel also lifts its shared-memory limit.
int64_t resident_blocks(const void* kernel, int threads, int smem) {
  static std::map<const void*, int64_t> known;
  if (auto it = known.find(kernel); it != known.end()) return it->second;
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  // Two blocks of up to 108 KB an SM need nearly all of its 228 KB as shared memory, not L1.
  CUDA_CHECK(
      cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout, cudaSharedmemCarveoutMaxShared));
  int per_sm = 0;
  CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem));
  return known[kernel] = int64_t(std::max(per_sm, 1)) * sm_count();
}

// Launches `kernel`, a GEMM with a kBM x BN block tile and K tiles of kBK. When the output tiles do
// not fill the GPU's resident blocks well (small images, and always the filter gradient), K is
// split (conv_detail::split_count); the splits' partial sums are then added by reduce_splits.
template <int BN, class T, class OpA, class OpB>
void launch(void (*kernel)(Problem<T, OpA, OpB>), int threads, int smem, Problem<T, OpA, OpB> pb) {
  const int64_t resident = resident_blocks(reinterpret_cast<const void*>(kernel), threads, smem);
  const int64_t tiles = ceil_div(pb.m, kBM) * ceil_div(pb.n, BN), k_tiles = ceil_div(pb.k, kBK<T>);
  const int64_t partial_bytes = int64_t(pb.m) * pb.n * int64_t(sizeof(float));
  const int64_t splits = conv_detail::split_count(
      pb.m, pb.n, pb.k, kBM, BN, resident, std::max<int64_t>(1, std::min(k_tiles / kMinTilesPerSplit, kMaxPartialBytes / partial_bytes)));
  if (splits > 1) pb.out.partial = static_cast<float*>(conv_detail::workspace(size_t(splits * partial_bytes)));
  kernel<<<dim3(unsigned(tiles), unsigned(splits)), unsigned(threads), size_t(smem), ddpm::cuda::stream()>>>(pb);
  CUDA_CHECK_LAUNCH("conv GEMM kernel");
  if (splits > 1) {
    reduce_splits<T><<<ddpm::cuda::grid_for(int64_t(pb.m) * pb.n), ddpm::cuda::kThreads, 0, ddpm::cuda::stream()>>>(
        pb.m, pb.n, int(splits), pb.out);
    CUDA_CHECK_LAUNCH("reduce_splits");
  }
}

// v6 (wgmma) runs where this build has sm_90a code (DDPM_WGMMA) and the GPU is compute capability
// 9.0, unless set_conv_wgmma(false) asked for v4. DDPM_CONV_WGMMA=0 in the environment rules v6
// out for the whole process: set_conv_wgmma(true) cannot bring it back (so a run that must avoid
// v6, after it failed on a GPU, stays on v4 whatever a benchmark or test switches).
const bool g_wgmma_allowed = [] {
  const char* env = std::getenv("DDPM_CONV_WGMMA");
  return !(env && std::string_view(env) == "0");
}();
bool g_wgmma = true;
bool wgmma_device() {
#ifdef DDPM_WGMMA
  static const bool hopper = device_attribute(cudaDevAttrComputeCapabilityMajor) == 9 &&
                             device_attribute(cudaDevAttrComputeCapabilityMinor) == 0;
  return hopper;
#else
  return false;
#endif
}

// N of 64 or less (64 or fewer output channels, or the filter gradient of a 64-channel layer)
// takes the 128 x 64 tile, so no half-empty 128 x 128 tiles; so does every N on a GPU whose blocks
// cannot have the 128 x 128 tile's shared memory. bf16 takes v6 where it can run.
template <int BN, class T, class OpA, class OpB> void run_bn(const Problem<T, OpA, OpB>& pb) {
  if constexpr (std::is_same_v<T, bf16>) {
    if (g_wgmma && g_wgmma_allowed && wgmma_device()) {
      launch<BN>(wgmma_kernel<BN, OpA, OpB>, kWgThreads, WgConfig<BN, OpA, OpB>::kSmemBytes, pb);
      return;
    }
  }
  using C = Config<T, BN, OpA, OpB>;
  launch<BN>(igemm_kernel<T, BN, OpA, OpB>, C::kThreads, C::kSmemBytes, pb);
}
template <class T, class OpA, class OpB> void run(const Problem<T, OpA, OpB>& pb) {
  if (pb.n <= 64 || Config<T, 128, OpA, OpB>::kSmemBytes > max_block_smem()) run_bn<64>(pb);
  else run_bn<128>(pb);
}

// The kernels index with 32-bit integers.
void check(const ConvShape& s) {
  DDPM_CHECK(s.pixels() * std::max(s.cin, s.cout) < INT_MAX && s.cout * s.k * s.k * s.cin < INT_MAX, "conv2d",
             "our implicit-GEMM kernels take tensors of fewer than 2^31 elements; got N*H*W = ", s.pixels(),
             ", Cin = ", s.cin, ", Cout = ", s.cout);
}

}  // namespace

namespace conv_detail {

#define FOR_FLOAT_AND_BF16(T)                                                                           \
  void igemm_fwd(const ConvShape& s, const T* x, const T* w, const T* b, T* y) {                        \
    check(s);                                                                                           \
    run(forward(s, x, w, b, y));                                                                        \
  }                                                                                                     \
  void igemm_bwd_data(const ConvShape& s, const T* dy, const T* w, T* dx) {                             \
    check(s);                                                                                           \
    run(data_grad(s, dy, w, dx));                                                                       \
  }                                                                                                     \
  void igemm_bwd_filter(const ConvShape& s, const T* x, const T* dy, T* dw) {                           \
    check(s);                                                                                           \
    run(filter_grad(s, x, dy, dw));                                                                     \
  }
FOR_FLOAT_AND_BF16(float)
FOR_FLOAT_AND_BF16(bf16)
#undef FOR_FLOAT_AND_BF16

}  // namespace conv_detail

bool conv_wgmma_available() { return g_wgmma_allowed && wgmma_device(); }
void set_conv_wgmma(bool on) { g_wgmma = on; }

}  // namespace ddpm::kernels::cuda
