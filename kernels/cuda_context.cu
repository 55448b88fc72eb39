#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/cuda_context.hpp"

namespace ddpm::cuda {

bool device_present() {
  static const bool present = [] {
    int n = 0;
    bool ok = cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
    (void)cudaGetLastError();  // "no device" must not poison later calls
    return ok;
  }();
  return present;
}

cudaStream_t stream() {
  static cudaStream_t s = [] {
    if (!device_present()) fail("cudaGetDeviceCount", "no CUDA device is present", __FILE__, __LINE__);
    cudaStream_t st;
    CUDA_CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    return st;
  }();
  return s;
}

cublasHandle_t cublas() {
  static cublasHandle_t h = [] {
    cublasHandle_t handle;
    CUBLAS_CHECK(cublasCreate(&handle));
    CUBLAS_CHECK(cublasSetStream(handle, stream()));
    // bf16 GEMMs: no split-K partial sums in bf16, so each output is rounded once (the CPU's rule).
    CUBLAS_CHECK(cublasSetMathMode(handle, CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION));
    return handle;
  }();
  return h;
}

namespace {
bool g_allow_tf32 = false;
}
void set_allow_tf32(bool on) { g_allow_tf32 = on; }
bool allow_tf32() { return g_allow_tf32; }

bool capturing() {
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  CUDA_CHECK(cudaStreamIsCapturing(stream(), &capture));
  return capture != cudaStreamCaptureStatusNone;
}

namespace {
// A pair of events that goes with its scope, also when a check throws.
struct EventPair {
  cudaEvent_t start = nullptr, stop = nullptr;
  EventPair() {
    CUDA_CHECK(cudaEventCreate(&start));
    CUDA_CHECK(cudaEventCreate(&stop));
  }
  ~EventPair() {
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
  }
  // Milliseconds of `reps` runs of fn back to back on the engine stream.
  float time(const std::function<void()>& fn, int reps) {
    CUDA_CHECK(cudaEventRecord(start, stream()));
    for (int i = 0; i < reps; ++i) fn();
    CUDA_CHECK(cudaEventRecord(stop, stream()));
    CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0.0f;
    CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    return ms;
  }
};
}  // namespace

void refuse_while_capturing(const char* call) {
  if (capturing())
    fail(call, "a library call's first use is being recorded into a graph; run it once before recording", __FILE__,
         __LINE__);
}

float median_ms(const std::function<void()>& fn) {
  refuse_while_capturing("median_ms");
  // A run of a few microseconds would be mostly launch delay timed alone: one run sizes a burst
  // of at least ~50 us (at most 32 runs), and each of the three timings is a burst's mean.
  EventPair events;
  const int reps = int(std::clamp(std::ceil(0.05f / std::max(events.time(fn, 1), 1e-4f)), 1.0f, 32.0f));
  float ms[3];
  for (float& m : ms) m = events.time(fn, reps) / float(reps);
  std::sort(ms, ms + 3);
  return ms[1];
}

int keep_fastest(int count, const std::function<bool(int)>& run) {
  if (count == 1) return 0;  // nothing to choose: the caller's own call says whether it is taken
  refuse_while_capturing("keep_fastest");
  int keep = -1;
  float keep_ms = 0.0f;
  for (int i = 0; i < count; ++i) {
    if (!run(i)) continue;
    const float ms = median_ms([&] { (void)run(i); });
    if (keep < 0 || ms < keep_ms * (1.0f - kKeepMargin)) keep = i, keep_ms = ms;
  }
  return keep;
}

void synchronize() { CUDA_CHECK(cudaStreamSynchronize(stream())); }

void fail(const char* call, const char* what, const char* file, int line) {
  throw Error(std::string("cuda: ") + call + " failed: " + what + " at " + file + ":" + std::to_string(line));
}

void check_launch(const char* kernel, const char* file, int line) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) fail(kernel, cudaGetErrorString(e), file, line);
#ifdef DDPM_SYNC_CHECK
  // Not while a graph is being recorded (engine/graph.hpp): a sync would end the recording. The
  // recorded kernels are checked when the graph is replayed.
  if (capturing()) return;
  e = cudaStreamSynchronize(stream());
  if (e != cudaSuccess) fail(kernel, cudaGetErrorString(e), file, line);
#endif
}

const char* cublas_status_name(cublasStatus_t s) { return cublasGetStatusString(s); }

}  // namespace ddpm::cuda
