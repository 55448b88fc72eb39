// CUDA convolution for kernels/conv.hpp: the backend switch, and backend CuDNN (cuDNN's legacy
// convolution API). Backend Ours is kernels/conv_igemm_cuda.cu.
//
// Tensors are described to cuDNN as NHWC and the OHWI weight as an NHWC-format filter (cuDNN's
// KRSC), so no layout conversion happens. bf16 tensors run with f32 accumulation
// (CUDNN_DATA_FLOAT compute) on tensor cores (CUDNN_TENSOR_OP_MATH). Per shape, dtype and TF32
// setting we keep a plan: the
// descriptors, and for each direction the algorithm chosen on first use (cudnnFind*, then pick()). The
// plans, the handle and the workspace live until the process ends (they are few and small; the
// workspace is one buffer shared by all calls, grown when an algorithm needs more). The first call
// of a shape measures algorithms and may grow the workspace (cudaMalloc), so a CUDA graph
// capture must come after every shape has run once.
#include <cudnn.h>

#include <algorithm>
#include <array>
#include <bit>
#include <climits>
#include <cmath>
#include <functional>
#include <map>
#include <type_traits>
#include <vector>

#include "kernels/conv.hpp"
#include "kernels/conv_cuda_detail.hpp"
#include "kernels/cuda_context.hpp"
#include "kernels/matmul.hpp"

#define CUDNN_CHECK(call)                                                                              \
  do {                                                                                                 \
    cudnnStatus_t s_ = (call);                                                                         \
    if (s_ != CUDNN_STATUS_SUCCESS) ::ddpm::cuda::fail(#call, cudnnGetErrorString(s_), __FILE__, __LINE__); \
  } while (0)

namespace ddpm::kernels::cuda {

// The shared workspace: see conv_cuda_detail.hpp.
// A smaller buffer it replaces is kept, not freed: a CUDA graph recorded earlier (engine/graph.hpp)
// may still point at it. Sizes grow by powers of two, so all of them together stay under twice
// the largest.
void* conv_detail::workspace(size_t bytes) {
  static void* ptr = nullptr;
  static size_t size = 0;
  static std::vector<void*> retired;
  if (bytes > size) {
    const size_t grown = std::bit_ceil(bytes);
    void* fresh = nullptr;
    CUDA_CHECK(cudaMalloc(&fresh, grown));
    if (ptr) retired.push_back(ptr);
    ptr = fresh;
    size = grown;
  }
  return ptr;
}

namespace {

using conv_detail::workspace;

ConvBackend g_backend = ConvBackend::CuDNN;

// Our kernels run f32 data only in TF32; exact f32 stays with cuDNN's FMA algorithms.
// Ours may run f32 data only in TF32 (it has no exact f32 path), bf16 data always.
bool ours_allowed(const float*) { return ddpm::cuda::allow_tf32(); }
bool ours_allowed(const bf16*) { return true; }

constexpr cudnnDataType_t data_type(const float*) { return CUDNN_DATA_FLOAT; }
constexpr cudnnDataType_t data_type(const bf16*) { return CUDNN_DATA_BFLOAT16; }

// Algorithms whose workspace exceeds this are skipped: the activations need the memory more.
constexpr size_t kMaxWorkspace = size_t(1) << 30;

cudnnHandle_t handle() {
  static cudnnHandle_t h = [] {
    cudnnHandle_t created;
    CUDNN_CHECK(cudnnCreate(&created));
    CUDNN_CHECK(cudnnSetStream(created, ddpm::cuda::stream()));
    return created;
  }();
  return h;
}

// One direction's algorithm: cuDNN's enum value (the three directions have different enum types),
// its workspace and the math type it was measured with.
struct Algo {
  int algo = -1;  // -1: not measured yet
  size_t bytes = 0;
  cudnnMathType_t math = CUDNN_FMA_MATH;
};

// `math` is the math type every cudnnFind* starts from: running a direction sets the descriptor
// to its own algorithm's math type, so each Find sets `math` again first (otherwise the second
// direction measured would search only the first one's math, e.g. FMA without tensor cores).
struct Plan {
  cudnnTensorDescriptor_t x, y;
  cudnnFilterDescriptor_t w;
  cudnnConvolutionDescriptor_t conv;
  cudnnMathType_t math;
  Algo fwd, data, filter;
};

// cudnnFind* times each algorithm once, and a single timing can be far off: on an H200 the
// forward of 3x3 128->128 at 16x16, batch 64, bf16 ran at 20 us in some processes and 187-239 us
// in others (bench_kernels at 91bf57c and 51595b9 against 25a059a and fc776d5), the slow choice
// being made at start-up and kept. So the first (up to) kCandidates usable algorithms in Find's
// order, deterministic ones only when there are any (each run of one gives the same bits), are
// timed again by ddpm::cuda::keep_fastest, which keeps Find's first unless another is clearly faster.
constexpr int kCandidates = 4;

template <class Perf>
Algo pick(const Perf* perf, int count, const char* direction, const std::function<void(const Algo&)>& run) {
  std::vector<Algo> usable;
  for (bool need_deterministic : {true, false}) {
    for (int i = 0; i < count && int(usable.size()) < kCandidates; ++i)
      if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= kMaxWorkspace &&
          (!need_deterministic || perf[i].determinism == CUDNN_DETERMINISTIC))
        usable.push_back({int(perf[i].algo), perf[i].memory, perf[i].mathType});
    if (!usable.empty()) break;
  }
  if (usable.empty()) ddpm::cuda::fail("cudnnFind", direction, __FILE__, __LINE__);
  // run() throws (CUDNN_CHECK) where cuDNN refuses a call: every candidate Find listed as usable is taken.
  return usable[ddpm::cuda::keep_fastest(int(usable.size()), [&](int i) {
    run(usable[i]);
    return true;
  })];
}

Plan& plan_for(const ConvShape& s, cudnnDataType_t type) {
  static std::map<std::array<int64_t, 8>, Plan> plans;
  const bool tf32 = ddpm::cuda::allow_tf32();
  const std::array<int64_t, 8> key{s.n, s.h, s.w, s.cin, s.cout, s.k, tf32, type};
  if (auto it = plans.find(key); it != plans.end()) return it->second;
  DDPM_CHECK(s.pixels() * std::max(s.cin, s.cout) <= INT_MAX && s.cout * s.k * s.k * s.cin <= INT_MAX, "conv2d",
             "tensors of 2^31 elements or more exceed cuDNN's 32-bit descriptors");
  const int n = int(s.n), h = int(s.h), w = int(s.w), cin = int(s.cin), cout = int(s.cout), k = int(s.k);
  const int pad = (k - 1) / 2;
  Plan p;
  CUDNN_CHECK(cudnnCreateTensorDescriptor(&p.x));
  CUDNN_CHECK(cudnnCreateTensorDescriptor(&p.y));
  CUDNN_CHECK(cudnnCreateFilterDescriptor(&p.w));
  CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&p.conv));
  CUDNN_CHECK(cudnnSetTensor4dDescriptor(p.x, CUDNN_TENSOR_NHWC, type, n, cin, h, w));
  CUDNN_CHECK(cudnnSetTensor4dDescriptor(p.y, CUDNN_TENSOR_NHWC, type, n, cout, h, w));
  CUDNN_CHECK(cudnnSetFilter4dDescriptor(p.w, type, CUDNN_TENSOR_NHWC, cout, cin, k, k));
  CUDNN_CHECK(cudnnSetConvolution2dDescriptor(p.conv, pad, pad, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION,
                                              CUDNN_DATA_FLOAT));
  // FMA_MATH keeps f32 exact to ~1e-6 of the CPU; DEFAULT_MATH lets f32 convolutions use TF32
  // tensor cores (ALLOW_CONVERSION would also permit down-conversion to FP16, which we do not want);
  // bf16 takes the tensor cores.
  p.math = type == CUDNN_DATA_BFLOAT16 ? CUDNN_TENSOR_OP_MATH
           : tf32                       ? CUDNN_DEFAULT_MATH
                                        : CUDNN_FMA_MATH;
  return plans.emplace(key, p).first->second;
}

// Fills `slot`, one direction's algorithm of plan p, on first use: cudnnFind* through find(n,
// &count, perf), starting from the plan's math type, then pick() timing candidates with run.
template <class Perf, int kCount, class Find>
void choose(Plan& p, Algo& slot, const char* direction, Find find, const std::function<void(const Algo&)>& run) {
  if (slot.algo >= 0) return;
  ddpm::cuda::refuse_while_capturing("cudnnFind");  // it runs and waits for every algorithm
  Perf perf[kCount];
  int count = 0;
  CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, p.math));
  find(kCount, &count, perf);
  slot = pick(perf, count, direction, run);
}

// y = conv(x, w) (+ b). cuDNN: the bias is written first and the convolution blended onto it
// (beta = 1). The candidates are timed without it (beta = 0: every run overwrites y).
template <class T> void cudnn_fwd(const ConvShape& s, const T* x, const T* w, const T* b, T* y) {
  Plan& p = plan_for(s, data_type(x));
  auto run = [&](const Algo& a, float beta) {
    const float alpha = 1.0f;
    CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, a.math));
    CUDNN_CHECK(cudnnConvolutionForward(handle(), &alpha, p.x, x, p.w, w, p.conv, cudnnConvolutionFwdAlgo_t(a.algo),
                                        workspace(a.bytes), a.bytes, &beta, p.y, y));
  };
  choose<cudnnConvolutionFwdAlgoPerf_t, CUDNN_CONVOLUTION_FWD_ALGO_COUNT>(
      p, p.fwd, "no usable forward convolution algorithm",
      [&](int n, int* count, cudnnConvolutionFwdAlgoPerf_t* perf) {
        CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithm(handle(), p.x, p.w, p.conv, p.y, n, count, perf));
      },
      [&](const Algo& a) { run(a, 0.0f); });
  if (b) bias_fill(y, b, s.pixels(), s.cout);
  run(p.fwd, b ? 1.0f : 0.0f);
}

template <class T> void cudnn_bwd_data(const ConvShape& s, const T* dy, const T* w, T* dx) {
  Plan& p = plan_for(s, data_type(dy));
  auto run = [&](const Algo& a) {
    const float alpha = 1.0f, beta = 0.0f;
    CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, a.math));
    CUDNN_CHECK(cudnnConvolutionBackwardData(handle(), &alpha, p.w, w, p.y, dy, p.conv,
                                             cudnnConvolutionBwdDataAlgo_t(a.algo), workspace(a.bytes), a.bytes,
                                             &beta, p.x, dx));
  };
  choose<cudnnConvolutionBwdDataAlgoPerf_t, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT>(
      p, p.data, "no usable backward-data convolution algorithm",
      [&](int n, int* count, cudnnConvolutionBwdDataAlgoPerf_t* perf) {
        CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithm(handle(), p.w, p.y, p.conv, p.x, n, count, perf));
      },
      run);
  run(p.data);
}

template <class T> void cudnn_bwd_filter(const ConvShape& s, const T* x, const T* dy, T* dw) {
  Plan& p = plan_for(s, data_type(x));
  auto run = [&](const Algo& a) {
    const float alpha = 1.0f, beta = 0.0f;
    CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, a.math));
    CUDNN_CHECK(cudnnConvolutionBackwardFilter(handle(), &alpha, p.x, x, p.y, dy, p.conv,
                                               cudnnConvolutionBwdFilterAlgo_t(a.algo), workspace(a.bytes), a.bytes,
                                               &beta, p.w, dw));
  };
  choose<cudnnConvolutionBwdFilterAlgoPerf_t, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT>(
      p, p.filter, "no usable backward-filter convolution algorithm",
      [&](int n, int* count, cudnnConvolutionBwdFilterAlgoPerf_t* perf) {
        CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithm(handle(), p.x, p.y, p.conv, p.w, n, count, perf));
      },
      run);
  run(p.filter);
}

// Backend Auto: the first call of each (shape, dtype, TF32 setting, direction) runs both
// implementations once (cudnnFind, workspace growth, kernel set-up), then times three runs of each
// on the call's own buffers (every output is overwritten, never accumulated, so repeating the call
// is harmless) and keeps the faster for the rest of the process. The choice depends on timing, so
// two processes may choose differently and differ in the last bits wherever the two are close;
// CuDNN's choice among its own algorithms is timed too, but with a margin (pick()), so it rarely
// flips, and Ours never does.
bool auto_picks_ours(const ConvShape& s, cudnnDataType_t type, ConvDir dir, const std::function<void()>& ours,
                     const std::function<void()>& theirs) {
  static std::map<std::array<int64_t, 9>, bool> choice;
  const std::array<int64_t, 9> key{s.n, s.h, s.w, s.cin, s.cout, s.k, ddpm::cuda::allow_tf32(), type, int64_t(dir)};
  if (auto it = choice.find(key); it != choice.end()) return it->second;
  theirs();
  ours();
  const bool faster = ddpm::cuda::median_ms(ours) < ddpm::cuda::median_ms(theirs);
  return choice.emplace(key, faster).first->second;
}

// Runs one direction on the backend the switch (and, for Measured, the rule; for Auto, the
// timing) selects.
template <class T>
void dispatch(const T* data, const ConvShape& s, ConvDir dir, const std::function<void()>& ours,
              const std::function<void()>& theirs) {
  const bool use_ours =
      ours_allowed(data) &&
      (g_backend == ConvBackend::Ours ||
       (g_backend == ConvBackend::Measured && ours_measured_faster(s, dir, std::is_same_v<T, bf16>)) ||
       (g_backend == ConvBackend::Auto && auto_picks_ours(s, data_type(data), dir, ours, theirs)));
  if (use_ours) ours();
  else theirs();
}

// Backend Ours: the direct kernels where a side is thin (conv_thin.cuh), else the implicit GEMM.
template <class T> void ours_fwd(const ConvShape& s, const T* x, const T* w, const T* b, T* y) {
  if (conv_detail::thin_fits(s, ConvDir::Forward)) conv_detail::thin_fwd(s, x, w, b, y);
  else conv_detail::igemm_fwd(s, x, w, b, y);
}
template <class T> void ours_bwd_data(const ConvShape& s, const T* dy, const T* w, T* dx) {
  if (conv_detail::thin_fits(s, ConvDir::Data)) conv_detail::thin_bwd_data(s, dy, w, dx);
  else conv_detail::igemm_bwd_data(s, dy, w, dx);
}
template <class T> void ours_bwd_filter(const ConvShape& s, const T* x, const T* dy, T* dw) {
  if (conv_detail::thin_fits(s, ConvDir::Filter)) conv_detail::thin_bwd_filter(s, x, dy, dw);
  else conv_detail::igemm_bwd_filter(s, x, dy, dw);
}

template <class T> void fwd_t(const ConvShape& s, const T* x, const T* w, const T* b, T* y) {
  dispatch(x, s, ConvDir::Forward, [&] { ours_fwd(s, x, w, b, y); }, [&] { cudnn_fwd(s, x, w, b, y); });
}
template <class T> void bwd_data_t(const ConvShape& s, const T* dy, const T* w, T* dx) {
  dispatch(dy, s, ConvDir::Data, [&] { ours_bwd_data(s, dy, w, dx); }, [&] { cudnn_bwd_data(s, dy, w, dx); });
}
template <class T> void bwd_filter_t(const ConvShape& s, const T* x, const T* dy, T* dw) {
  dispatch(x, s, ConvDir::Filter, [&] { ours_bwd_filter(s, x, dy, dw); }, [&] { cudnn_bwd_filter(s, x, dy, dw); });
}

}  // namespace

void set_conv_backend(ConvBackend b) { g_backend = b; }
ConvBackend conv_backend() { return g_backend; }

void conv2d_fwd(const ConvShape& s, const float* x, const float* w, const float* b, float* y) { fwd_t(s, x, w, b, y); }
void conv2d_fwd(const ConvShape& s, const bf16* x, const bf16* w, const bf16* b, bf16* y) { fwd_t(s, x, w, b, y); }
void conv2d_bwd_data(const ConvShape& s, const float* dy, const float* w, float* dx) { bwd_data_t(s, dy, w, dx); }
void conv2d_bwd_data(const ConvShape& s, const bf16* dy, const bf16* w, bf16* dx) { bwd_data_t(s, dy, w, dx); }
void conv2d_bwd_filter(const ConvShape& s, const float* x, const float* dy, float* dw) { bwd_filter_t(s, x, dy, dw); }
void conv2d_bwd_filter(const ConvShape& s, const bf16* x, const bf16* dy, bf16* dw) { bwd_filter_t(s, x, dy, dw); }

}  // namespace ddpm::kernels::cuda
