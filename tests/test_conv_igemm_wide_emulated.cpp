// tests/test_conv_igemm_emulated.cpp again, on the experiment DDPM_IGEMM_WN=64 of
// kernels/conv_igemm.cuh (64-wide warp tiles in the 128-wide blocks, 4 warps instead of 8), so
// that the variant tools/gpu-variants.sh sends to a GPU is right before it goes (docs/kernels.md,
// "v5"). Its own translation unit: the kernel templates are in an unnamed namespace.
#define DDPM_IGEMM_WN 64
#define CONV_EMULATED_VARIANT ", 64-wide warp tiles"
#include "test_conv_igemm_emulated.cpp"
