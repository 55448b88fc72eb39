// Warp-level tensor-core and asynchronous-copy primitives (sm_80 and later), as thin PTX wrappers.
//
// mma.sync multiplies one warp's register fragments: D[16x8] += A[16xK] B[Kx8], f32 accumulate.
// Lane l of the warp is g = l / 4 (its "group", a row of A and D, a column of B) and t = l % 4.
// A register holds one TF32 value, or two bf16 values with the lower K index in the low half:
//   A (16xK, row-major):  a[r] = A[g + 8*(r%2)][t*u + (K/2)*(r/2)]   (and K index + 1 for bf16)
//   B (Kx8, by column):   b[r] = B[t*u + (K/2)*r][g]                  (and K index + 1 for bf16)
//   D (16x8):             d[r] = D[g + 8*(r/2)][2*t + r%2]
// with K = 8, u = 1 for TF32 (m16n8k8) and K = 16, u = 2 for bf16 (m16n8k16).
// k is only summed over, so a kernel may relabel it, the same way in A and B: the attention
// kernels (kernels/attention_tc.cuh) let TF32's k = t + 4h carry their k 2t + h, so that the D
// fragment of one 16x8 tile, which holds columns 2t and 2t + 1, is unchanged the A fragment of an
// 8-deep k step, and a lane's two B values are adjacent in memory.
#pragma once
#include <cstdint>

namespace ddpm::cuda::ptx {

// 16-byte global -> shared copy that skips L1 (cp.async.cg). When !valid nothing is read (src may
// be any address) and the 16 destination bytes are zero-filled: that is how out-of-image taps and
// tile tails become zeros without a branch around the copy.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
  const unsigned dst = unsigned(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem), "r"(valid ? 16 : 0));
}

// Closes the group of copies issued since the last commit.
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

// Waits until at most `kPending` committed groups are still in flight (this thread's copies only:
// a __syncthreads() must follow before other threads read the data).
template <int kPending> __device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

// f32 -> TF32: round to nearest (ties away from zero) to 10 mantissa bits; the result is a float's
// bit pattern with the low 13 bits zero, as mma.sync's .tf32 operands expect.
__device__ __forceinline__ uint32_t to_tf32(float x) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
  return r;
}

// Two f32 -> one register of two bf16, lo in the low half (the operand layout above), each rounded
// to nearest even: the same bits as from_f32<bf16> for every non-NaN value, in one instruction
// where the software rounding takes about six per value.
__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  uint32_t r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));  // the first source is the high half
  return r;
}

// 2^x in one MUFU.EX2 (ex2.approx.ftz: ~2 ulp, subnormal results flushed to 0, 2^-inf = 0).
// exp2f() compiles to ex2.approx without .ftz, which sm_90 wraps in extra instructions to scale
// subnormal results: in the attention kernels' inner loops that roughly doubles an exponential's
// cost, and the probabilities they compute gain nothing from values below 2^-126.
__device__ __forceinline__ float exp2_ftz(float x) {
  float r;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(r) : "f"(x));
  return r;
}

// ldmatrix.x4: the warp reads four 8 x 8 matrices of 16-bit values from shared memory. Lane l
// gives the address of row l % 8 of matrix l / 8 (16 contiguous bytes, 16-byte aligned); register
// m of lane (g, t) gets matrix m's row g, columns 2t and 2t + 1 (lower column in the low half):
// the B fragment layout above, for a matrix stored with k along its rows. With .trans it gets
// column g, rows 2t and 2t + 1: the B fragment of a matrix stored with k down its columns.
// Like CUTLASS's, these are asm volatile without a "memory" clobber: __syncthreads() orders them
// after the stores they read.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* smem) {
  const unsigned a = unsigned(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* smem) {
  const unsigned a = unsigned(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}

// d += a b, m16n8k8, TF32 inputs.
__device__ __forceinline__ void mma_tf32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// d += a b, m16n8k16, bf16 inputs.
__device__ __forceinline__ void mma_bf16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

}  // namespace ddpm::cuda::ptx
