// Storage: one contiguous, reference-counted block of device memory. Tensors share a Storage
// through std::shared_ptr, which is what makes views (reshape, slices along dim 0) cheap.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "engine/dtype.hpp"

namespace ddpm {

// Byte counts of one device's allocator. On CUDA, `reserved` is what the cache holds from the
// driver and `device_mallocs` counts cudaMalloc calls (flat in a training loop's steady state).
struct AllocatorStats {
  size_t in_use = 0;
  size_t peak = 0;
  size_t reserved = 0;
  size_t device_mallocs = 0;
};

void* allocate(size_t bytes, Device device);
void deallocate(void* ptr, size_t bytes, Device device);
AllocatorStats allocator_stats(Device device);
void reset_peak(Device device);
// Test aid: when on, every new CUDA allocation is filled with 0xFF bytes (NaN in f32 and bf16),
// so a kernel that leaves an output element unwritten fails its comparison.
void set_poison_allocations(bool on);

// Private pools for captured CUDA graphs (engine/graph.hpp). A graph replays the addresses it was
// captured with, so the blocks it used must not go back to the shared cache while it lives. Between
// begin_graph_pool() and end_graph_pool(), CUDA blocks handed out belong to the new pool; a pool's
// block freed at any time returns to that pool, and allocations during its capture look there
// first. release_graph_pool() gives the free ones to the shared cache and lets those still held by
// tensors follow when they are freed. One capture at a time; CPU allocations are unaffected.
using GraphPool = uint64_t;
GraphPool begin_graph_pool();
void end_graph_pool();
void release_graph_pool(GraphPool pool);

class Storage {
 public:
  Storage(size_t bytes, Device device) : bytes_(bytes), device_(device), ptr_(allocate(bytes, device)) {}
  ~Storage() { deallocate(ptr_, bytes_, device_); }
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  size_t bytes_;
  Device device_;
  void* ptr_;
};

}  // namespace ddpm
