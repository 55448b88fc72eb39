#include "engine/graph.hpp"

#include <string>

#include "engine/storage.hpp"
#ifdef DDPM_HAVE_CUDA
#include "kernels/cuda_context.hpp"
#endif

namespace ddpm {

#ifdef DDPM_HAVE_CUDA
struct Graph::Cuda {
  cudaGraphExec_t exec = nullptr;
  GraphPool pool = 0;
};

namespace {

// Records fn on the engine stream into `pool`. Relaxed mode: a cudaMalloc for a pool block that
// the cache cannot supply is legal during capture (it is not stream work, so it is not recorded).
cudaGraph_t record(const std::function<void()>& fn) {
  cudaStream_t s = cuda::stream();
  CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed));
  try {
    fn();
  } catch (const std::exception& e) {
    cudaGraph_t partial = nullptr;
    (void)cudaStreamEndCapture(s, &partial);  // leaves the stream usable again
    if (partial) (void)cudaGraphDestroy(partial);
    (void)cudaGetLastError();
    detail::fail("graph", "this work cannot be recorded as a CUDA graph: ", e.what());
  }
  cudaGraph_t graph = nullptr;
  CUDA_CHECK(cudaStreamEndCapture(s, &graph));
  return graph;
}

}  // namespace
#endif

Graph::Graph(Device device, std::function<void()> fn) {
  if (device == Device::CPU) {
    fn_ = std::move(fn);
    return;
  }
#ifdef DDPM_HAVE_CUDA
  fn();  // the warm-up: first-use setup happens here, outside the capture
  cuda_ = std::make_unique<Cuda>();
  cuda_->pool = begin_graph_pool();
  cudaGraph_t graph = nullptr;
  try {
    graph = record(fn);
  } catch (...) {
    end_graph_pool();
    release_graph_pool(cuda_->pool);
    throw;
  }
  end_graph_pool();
  // cuBLAS may record a stream-ordered allocation of its workspace that the recording does not
  // free; AutoFreeOnLaunch frees such blocks before each relaunch instead of failing it.
  cudaError_t e = cudaGraphInstantiate(&cuda_->exec, graph, cudaGraphInstantiateFlagAutoFreeOnLaunch);
  (void)cudaGraphDestroy(graph);
  if (e != cudaSuccess) {
    release_graph_pool(cuda_->pool);
    CUDA_CHECK(e);
  }
#else
  detail::fail("graph", "this build has no CUDA backend");
#endif
}

Graph::~Graph() {
#ifdef DDPM_HAVE_CUDA
  if (cuda_) {
    // An executable graph is destroyed only once no launch of it is queued.
    (void)cudaStreamSynchronize(cuda::stream());
    (void)cudaGraphExecDestroy(cuda_->exec);
    release_graph_pool(cuda_->pool);
  }
#endif
}

void Graph::replay() {
#ifdef DDPM_HAVE_CUDA
  if (cuda_) {
    CUDA_CHECK(cudaGraphLaunch(cuda_->exec, cuda::stream()));
    return;
  }
#endif
  fn_();
}

}  // namespace ddpm
