#include "engine/graph.hpp"

#include "engine/storage.hpp"
#ifdef DDPM_HAVE_CUDA
#include "kernels/cuda_context.hpp"
#endif

namespace ddpm {

namespace {
int64_t g_recordings = 0;
}

int64_t Graph::recordings() { return g_recordings; }

// Empty in a build without CUDA, where no graph is ever recorded.
struct Graph::Cuda {
#ifdef DDPM_HAVE_CUDA
  cudaGraphExec_t exec = nullptr;
  GraphPool pool = 0;
#endif
};

#ifdef DDPM_HAVE_CUDA
namespace {

// Ends a recording that failed, leaving the stream usable and no error pending for the next
// launch check to pin on an innocent kernel.
void abandon(cudaStream_t s) {
  cudaGraph_t partial = nullptr;
  (void)cudaStreamEndCapture(s, &partial);
  if (partial) (void)cudaGraphDestroy(partial);
  (void)cudaGetLastError();
}

// Records fn on the engine stream. Relaxed mode: a cudaMalloc for a pool block that the cache
// cannot supply is legal during capture (it is not stream work, so it is not recorded).
cudaGraph_t record(const std::function<void()>& fn) {
  cudaStream_t s = cuda::stream();
  CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed));
  try {
    fn();
  } catch (const std::exception& e) {
    abandon(s);
    detail::fail("graph", "this work cannot be recorded as a CUDA graph: ", e.what());
  } catch (...) {
    abandon(s);
    throw;
  }
  cudaGraph_t graph = nullptr;
  cudaError_t e = cudaStreamEndCapture(s, &graph);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    detail::fail("graph", "this work cannot be recorded as a CUDA graph: cudaStreamEndCapture: ",
                 cudaGetErrorString(e));
  }
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
    (void)cudaGetLastError();
    release_graph_pool(cuda_->pool);
    CUDA_CHECK(e);
  }
  ++g_recordings;
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
