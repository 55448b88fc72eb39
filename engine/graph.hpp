// Graph: a piece of device work recorded once and replayed many times. On the GPU a U-Net forward
// is a few hundred kernel launches, each costing the host a few microseconds (checks, allocations, the
// launch itself); replayed as one CUDA graph it costs one launch, and the GPU runs the kernels
// back to back. The sampler replays its network calls this way (diffusion/sampler.cpp).
//
// Graph(device, fn) records what fn does; replay() does it again. fn must be replayable: the same
// kernels on the same memory every time, with what changes between replays written into tensors
// fn reads (the caller fills them before each replay) and results read from tensors fn assigns
// (valid after each replay); the tensors it reads but does not make must outlive the graph.
// Tensors fn allocates come from a pool private to the graph
// (engine/storage.hpp), so their addresses stay the graph's until it is destroyed.
//
// CUDA: fn runs once eagerly first (first-use setup, such as cuDNN plans, conv workspaces and
// kernel attributes, must not happen under capture), then once under stream capture, which
// records without running. Work that cannot be recorded (reading a result on the host, a copy
// from host memory) fails the capture with an error naming it. CPU: there is nothing to record;
// replay() calls fn.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>

#include "engine/dtype.hpp"

namespace ddpm {

class Graph {
 public:
  Graph(Device device, std::function<void()> fn);
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  void replay();

  // How many CUDA graphs this process has recorded (a CPU graph records nothing): for tests and
  // benchmarks that must know a graph was used.
  static int64_t recordings();

 private:
  struct Cuda;
  std::function<void()> fn_;     // CPU: what replay() runs
  std::unique_ptr<Cuda> cuda_;  // CUDA: the instantiated graph and its pool
};

}  // namespace ddpm
