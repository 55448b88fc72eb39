// The CUDA context every GPU kernel runs in: one stream for the whole engine, the cuBLAS handle,
// and the checks. Every CUDA, cuBLAS and cuDNN call goes through CUDA_CHECK / CUBLAS_CHECK /
// CUDNN_CHECK, which throw ddpm::Error naming the call, file and line. Kernel launches are
// followed by CUDA_CHECK_LAUNCH: in debug builds (DDPM_SYNC_CHECK) it synchronises so a fault is
// reported at the kernel that caused it; in release builds it only reads the launch error, and
// faults surface at the next synchronisation point (cuda::synchronize()).
#pragma once
#ifdef DDPM_HAVE_CUDA
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <functional>

#include "kernels/error.hpp"

namespace ddpm::cuda {

bool device_present();
cudaStream_t stream();
cublasHandle_t cublas();
void synchronize();  // waits for the stream and reports any asynchronous fault
// f32 matrix products (cuBLAS, cuDNN, our conv) may use TF32 tensor cores when allowed. Off by
// default so f32 results match the CPU to ~1e-6; `--tf32` (engine/gpu_settings.hpp) switches it on.
void set_allow_tf32(bool on);
bool allow_tf32();
// Whether the engine stream is recording a CUDA graph (engine/graph.hpp): nothing may wait then.
bool capturing();
// Throws, naming `call`, while a graph records: for the first-use work of a library call (timing,
// cudnnFind) that waits for the GPU. A first use must come before recording (engine/graph.hpp runs
// its function once for that).
void refuse_while_capturing(const char* call);
// Milliseconds per run of fn on the engine stream: the median of three timings by events, each of
// a burst of runs long enough that launch delay does not dominate; waits, so refused while capturing.
float median_ms(const std::function<void()>& fn);
// Which of `count` candidate algorithms of a library call to keep, chosen on the call's first use:
// run(i) makes the call with candidate i (on the caller's buffers: the call must overwrite its
// output, never accumulate) and says whether the library took it. Each taken candidate runs once
// untimed (module loading, caches), then median_ms times it. The library's first taken candidate is
// kept unless a later one is more than kKeepMargin faster: near-ties go to the library's own
// ranking, so two processes rarely choose differently (the choice depends on timing). -1 when none
// was taken; one candidate is kept without a run. Refused while a graph records.
constexpr float kKeepMargin = 0.1f;
int keep_fastest(int count, const std::function<bool(int)>& run);

[[noreturn]] void fail(const char* call, const char* what, const char* file, int line);
void check_launch(const char* kernel, const char* file, int line);
const char* cublas_status_name(cublasStatus_t s);

}  // namespace ddpm::cuda

#define CUDA_CHECK(call)                                                              \
  do {                                                                                \
    cudaError_t e_ = (call);                                                          \
    if (e_ != cudaSuccess) ::ddpm::cuda::fail(#call, cudaGetErrorString(e_), __FILE__, __LINE__); \
  } while (0)

#define CUBLAS_CHECK(call)                                                            \
  do {                                                                                \
    cublasStatus_t s_ = (call);                                                       \
    if (s_ != CUBLAS_STATUS_SUCCESS)                                                  \
      ::ddpm::cuda::fail(#call, ::ddpm::cuda::cublas_status_name(s_), __FILE__, __LINE__); \
  } while (0)

#define CUDA_CHECK_LAUNCH(name) ::ddpm::cuda::check_launch(name, __FILE__, __LINE__)

#endif
