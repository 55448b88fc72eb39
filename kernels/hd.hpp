// DDPM_HD marks small functions that both backends compile: plain inline on the CPU,
// __host__ __device__ under nvcc, so the CPU reference and the CUDA kernel share one formula.
#pragma once
#ifdef __CUDACC__
#define DDPM_HD __host__ __device__ __forceinline__
#else
#define DDPM_HD inline
#endif
