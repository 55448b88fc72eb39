// Allocators. CPU: 64-byte aligned heap blocks (one cache line, the widest vector load).
// CUDA: a caching allocator, so a training loop's steady state never calls cudaMalloc/cudaFree:
// freed blocks go to a free list keyed by their rounded size and are handed out again.
#include <cstdlib>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "engine/storage.hpp"
#ifdef DDPM_HAVE_CUDA
#include "kernels/cuda_context.hpp"
#endif

namespace ddpm {
namespace {

struct Counters {
  AllocatorStats stats;
  void add(size_t bytes) {
    stats.in_use += bytes;
    if (stats.in_use > stats.peak) stats.peak = stats.in_use;
  }
};

Counters cpu_counters;
std::mutex cpu_mutex;

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

void* cpu_allocate(size_t bytes) {
  size_t n = round_up(bytes == 0 ? 1 : bytes, 64);
  void* p = std::aligned_alloc(64, n);
  DDPM_CHECK(p != nullptr, "allocate", "out of host memory asking for ", n, " bytes");
  std::lock_guard<std::mutex> lock(cpu_mutex);
  cpu_counters.add(n);
  cpu_counters.stats.reserved = cpu_counters.stats.in_use;
  return p;
}

void cpu_deallocate(void* p, size_t bytes) {
  std::free(p);
  std::lock_guard<std::mutex> lock(cpu_mutex);
  cpu_counters.stats.in_use -= round_up(bytes == 0 ? 1 : bytes, 64);
  cpu_counters.stats.reserved = cpu_counters.stats.in_use;
}

#ifdef DDPM_HAVE_CUDA
// Blocks are rounded to 512 B below 1 MiB and to 2 MiB above, so a few sizes cover a whole
// network and cached blocks are reused exactly. All work runs on the one engine stream, so a
// block freed by the host can be reused by the next kernel without an event: stream order
// guarantees the earlier kernels that used it have finished reading it.
Counters cuda_counters;
bool cuda_poison = false;
std::multimap<size_t, void*> cuda_free;
std::mutex cuda_mutex;

// Graph pools (storage.hpp): each pool's free blocks, which pool owns each block (0: none left,
// the block goes to the shared cache when freed), and the pool being captured (0: none).
std::map<GraphPool, std::multimap<size_t, void*>> pool_free;
std::unordered_map<void*, GraphPool> pool_of;  // looked up at every free: hashed
GraphPool capturing = 0, last_pool = 0;

// A block of exactly n bytes from `from`, or nullptr.
void* take(std::multimap<size_t, void*>& from, size_t n) {
  auto it = from.find(n);
  if (it == from.end()) return nullptr;
  void* p = it->second;
  from.erase(it);
  return p;
}

size_t cuda_round(size_t bytes) {
  if (bytes == 0) bytes = 1;
  return bytes < (1u << 20) ? round_up(bytes, 512) : round_up(bytes, 2u << 20);
}

void* cuda_allocate(size_t bytes) {
  size_t n = cuda_round(bytes);
  std::lock_guard<std::mutex> lock(cuda_mutex);
  void* p = capturing ? take(pool_free[capturing], n) : nullptr;
  if (!p) p = take(cuda_free, n);
  if (!p) {
    cudaError_t e = cudaMalloc(&p, n);
    if (e == cudaErrorMemoryAllocation && !capturing) {
      // Give the cache back to the driver and try once more before reporting (not while a graph
      // is being recorded: cudaFree waits for the device, which a recording cannot). A live graph's
      // pool stays: its replays write those blocks (so a `train --graph` run holds its step's
      // memory for good, and a sample grid beside it has only the rest).
      (void)cudaGetLastError();
      while (!cuda_free.empty()) {
        auto [size, q] = *cuda_free.begin();
        cuda_free.erase(cuda_free.begin());
        cuda_counters.stats.reserved -= size;
        CUDA_CHECK(cudaFree(q));
      }
      e = cudaMalloc(&p, n);
    }
    DDPM_CHECK(e == cudaSuccess, "allocate", "cudaMalloc of ", n, " bytes failed: ", cudaGetErrorString(e),
               " (in use ", cuda_counters.stats.in_use, " bytes)");
    cuda_counters.stats.reserved += n;
    cuda_counters.stats.device_mallocs++;
  }
  if (capturing) pool_of[p] = capturing;
  cuda_counters.add(n);
  if (cuda_poison) CUDA_CHECK(cudaMemsetAsync(p, 0xFF, n, cuda::stream()));
  return p;
}

void cuda_deallocate(void* p, size_t bytes) {
  size_t n = cuda_round(bytes);
  std::lock_guard<std::mutex> lock(cuda_mutex);
  auto owner = pool_of.find(p);
  if (owner != pool_of.end() && owner->second) {
    pool_free[owner->second].emplace(n, p);
  } else {
    cuda_free.emplace(n, p);
    if (owner != pool_of.end()) pool_of.erase(owner);
  }
  cuda_counters.stats.in_use -= n;
}
#endif

}  // namespace

void* allocate(size_t bytes, Device device) {
  if (device == Device::CPU) return cpu_allocate(bytes);
#ifdef DDPM_HAVE_CUDA
  return cuda_allocate(bytes);
#else
  detail::fail("allocate", "this build has no CUDA backend (configure with nvcc and -DDDPM_CUDA=ON)");
#endif
}

void deallocate(void* ptr, size_t bytes, Device device) {
  if (device == Device::CPU) return cpu_deallocate(ptr, bytes);
#ifdef DDPM_HAVE_CUDA
  cuda_deallocate(ptr, bytes);
#endif
}

GraphPool begin_graph_pool() {
#ifdef DDPM_HAVE_CUDA
  std::lock_guard<std::mutex> lock(cuda_mutex);
  DDPM_CHECK(!capturing, "graph", "a graph is already being captured");
  capturing = ++last_pool;
  return capturing;
#else
  return 0;
#endif
}

void end_graph_pool() {
#ifdef DDPM_HAVE_CUDA
  std::lock_guard<std::mutex> lock(cuda_mutex);
  capturing = 0;
#endif
}

void release_graph_pool([[maybe_unused]] GraphPool pool) {
#ifdef DDPM_HAVE_CUDA
  std::lock_guard<std::mutex> lock(cuda_mutex);
  auto free = pool_free.find(pool);
  if (free != pool_free.end()) {
    for (auto& [n, p] : free->second) {
      cuda_free.emplace(n, p);
      pool_of.erase(p);
    }
    pool_free.erase(free);
  }
  for (auto& [p, owner] : pool_of)
    if (owner == pool) owner = 0;  // still held by a tensor: to the shared cache when freed
#endif
}

AllocatorStats allocator_stats(Device device) {
#ifdef DDPM_HAVE_CUDA
  if (device == Device::CUDA) {
    std::lock_guard<std::mutex> lock(cuda_mutex);
    return cuda_counters.stats;
  }
#endif
  std::lock_guard<std::mutex> lock(cpu_mutex);
  return device == Device::CPU ? cpu_counters.stats : AllocatorStats{};
}

void reset_peak(Device device) {
  if (device == Device::CUDA) {
#ifdef DDPM_HAVE_CUDA
    std::lock_guard<std::mutex> lock(cuda_mutex);
    cuda_counters.stats.peak = cuda_counters.stats.in_use;
#endif
    return;
  }
  std::lock_guard<std::mutex> lock(cpu_mutex);
  cpu_counters.stats.peak = cpu_counters.stats.in_use;
}

void set_poison_allocations([[maybe_unused]] bool on) {
#ifdef DDPM_HAVE_CUDA
  std::lock_guard<std::mutex> lock(cuda_mutex);
  cuda_poison = on;
#endif
}

bool cuda_available() {
#ifdef DDPM_HAVE_CUDA
  return cuda::device_present();
#else
  return false;
#endif
}

}  // namespace ddpm
