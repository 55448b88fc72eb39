// tests/test_conv_igemm_emulated.cpp again, on version 6 of our convolution (kernels/conv_wgmma.cuh:
// Hopper's wgmma, bf16 only), every case of that file: the operands' swizzled shared-memory
// layouts and descriptors, the fences and the asynchronous pipeline are what runs here on top of
// v4's loaders. Its own translation unit: the kernel templates are in an unnamed namespace.
#define CONV_EMULATED_WGMMA
#define CONV_EMULATED_VARIANT ", v6 (wgmma)"
#include "test_conv_igemm_emulated.cpp"
