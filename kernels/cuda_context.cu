#include <algorithm>
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

float median_ms(const std::function<void()>& fn) {
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  float ms[3];
  for (float& m : ms) {
    CUDA_CHECK(cudaEventRecord(start, stream()));
    fn();
    CUDA_CHECK(cudaEventRecord(stop, stream()));
    CUDA_CHECK(cudaEventSynchronize(stop));
    CUDA_CHECK(cudaEventElapsedTime(&m, start, stop));
  }
  CUDA_CHECK(cudaEventDestroy(start));
  CUDA_CHECK(cudaEventDestroy(stop));
  std::sort(ms, ms + 3);
  return ms[1];
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
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  CUDA_CHECK(cudaStreamIsCapturing(stream(), &capture));
  if (capture != cudaStreamCaptureStatusNone) return;
  e = cudaStreamSynchronize(stream());
  if (e != cudaSuccess) fail(kernel, cudaGetErrorString(e), file, line);
#endif
}

const char* cublas_status_name(cublasStatus_t s) { return cublasGetStatusString(s); }

}  // namespace ddpm::cuda
