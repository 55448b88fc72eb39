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

// ---- Hopper (sm_90a) warpgroup MMA -----------------------------------------------------------------
// wgmma.mma_async: the 4 warps of a warpgroup (threads 128g .. 128g + 127) multiply
// D[64 x N] += A[64 x 16] B[16 x N], A and B read from shared memory through 64-bit matrix
// descriptors (kernels/conv_wgmma.cuh builds them), D in registers: thread t of the warpgroup,
// warp w = t / 32, (g, q) = (t % 32 / 4, t % 4), holds
//   d[4j + r] = D[16w + g + 8(r/2)][8j + 2q + r%2],   j < N/8
// (each 8-column slice as mma.sync's D above). kTrans = 0: the operand is K-major in shared
// memory (its rows M or N, K contiguous); 1: MN-major. The product is asynchronous: D may be
// neither read nor written until wgmma_wait has let its group go, and the shared memory it reads
// must not be overwritten before then. Only sm_90a has these instructions: compiled for anything
// else, they trap (kernels/conv_wgmma.cuh guards their use with __CUDA_ARCH_FEAT_SM90_ALL too).
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define DDPM_SM90A_ASM(...) asm volatile(__VA_ARGS__)
#else
#define DDPM_SM90A_ASM(...) __trap()
#endif
template <int kTransA, int kTransB>
__device__ __forceinline__ void wgmma_m64n64k16_bf16(float (&d)[32], uint64_t desc_a, uint64_t desc_b) {
  DDPM_SM90A_ASM(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
      "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
      "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31"
      "}, %32, %33, p, 1, 1, %35, %36;\n}\n"
      :
        "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(desc_a), "l"(desc_b), "r"(1), "n"(kTransA), "n"(kTransB));
}
template <int kTransA, int kTransB>
__device__ __forceinline__ void wgmma_m64n128k16_bf16(float (&d)[64], uint64_t desc_a, uint64_t desc_b) {
  DDPM_SM90A_ASM(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
      "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
      "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,"
      "%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,"
      "%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63"
      "}, %64, %65, p, 1, 1, %67, %68;\n}\n"
      :
        "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(desc_a), "l"(desc_b), "r"(1), "n"(kTransA), "n"(kTransB));
}

// Orders this warpgroup's register accesses before the wgmma that follow (required before the
// first one, and after D was touched).
__device__ __forceinline__ void wgmma_fence() { DDPM_SM90A_ASM("wgmma.fence.sync.aligned;\n" ::: "memory"); }
// Closes the group of wgmma issued since the last commit.
__device__ __forceinline__ void wgmma_commit() { DDPM_SM90A_ASM("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
// Waits until at most kPending groups of this warpgroup are in flight.
template <int kPending> __device__ __forceinline__ void wgmma_wait() {
  DDPM_SM90A_ASM("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kPending) : "memory");
}
// Keeps the compiler from moving accesses of v across the asynchronous wgmma (it cannot see that
// wgmma_wait is what writes the accumulators).
template <int n> __device__ __forceinline__ void fence_registers(float (&v)[n]) {
#pragma unroll
  for (int i = 0; i < n; ++i) asm volatile("" : "+f"(v[i])::"memory");
}

// wgmma reads shared memory through the async proxy; writes by cp.async and st.shared are generic
// proxy writes and reach it only after this fence (by the writing thread, before the barrier).
__device__ __forceinline__ void fence_proxy_async() { DDPM_SM90A_ASM("fence.proxy.async.shared::cta;\n" ::: "memory"); }
#undef DDPM_SM90A_ASM

// The shared-window address of a shared-memory pointer (what descriptors and swizzles are made of).
__device__ __forceinline__ uint32_t shared_address(const void* p) { return uint32_t(__cvta_generic_to_shared(p)); }

}  // namespace ddpm::cuda::ptx
