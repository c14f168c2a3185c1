// Shared helpers for Troupe's CUDA kernels. Every kernel Troupe launches is extern "C" so the Java
// side finds it by its plain name with cuModuleGetFunction.
#pragma once
#include <stdint.h>

#define TROUPE_WARP 32

// Dynamic shared memory (the launch's sharedMemBytes); the CPU emulator of the tests gives it its own meaning.
#ifndef TROUPE_DYNAMIC_SHARED
#define TROUPE_DYNAMIC_SHARED(T, name) extern __shared__ T name[]
#endif

// Error codes a kernel reports through the device error word (checked by CudaDevice.synchronize()).
#define TROUPE_ERR_CE_TARGET 1
#define TROUPE_ERR_EMBEDDING_ID 2

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Records the first error only: (code, offending value), so the host can name the bad value.
__device__ __forceinline__ void report_error(int* err, int code, int value) {
    if (atomicCAS(err, 0, code) == 0) {
        err[1] = value;
    }
}

// Round-to-nearest-even float -> bfloat16 bits (NaN kept quiet), written out so it matches the
// host conversion in CudaDevice bit for bit.
__device__ __forceinline__ uint16_t f32_to_bf16_bits(float f) {
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t) ((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t) (u >> 16);
}

__device__ __forceinline__ float bf16_bits_to_f32(uint16_t h) {
    return __uint_as_float(((uint32_t) h) << 16);
}
