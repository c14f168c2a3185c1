// The CUDA emulator's device-side vocabulary: included ahead of every .cu file of
// runtime/src/main/cuda when build-emu.sh compiles it as plain C++ for the CPU.
//
// Each CUDA thread of a block is a fiber (its own stack, switched cooperatively): __syncthreads,
// __syncwarp, the warp shuffles and mma.sync are real barriers among the block's or the warp's
// fibers, so a kernel whose threads do not all reach a barrier is reported stuck instead of
// silently passing. Blocks run one after another, so __shared__ variables are statics.
// What it checks: indexing, barriers, warp exchanges, the mma fragment layouts of the PTX ISA,
// and results against the Java references. What it cannot: timing, occupancy, the memory model
// between blocks, and anything a GPU does only at scale.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <algorithm>

#define TROUPE_CUDA_EMU 1

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static
#define TROUPE_DYNAMIC_SHARED(T, name) T* name = reinterpret_cast<T*>(troupe_emu::dynamic_shared())

struct dim3 {
    unsigned int x, y, z;
};

struct float2 { float x, y; };
struct __attribute__((aligned(16))) float4 { float x, y, z, w; };
struct int2 { int x, y; };
struct __attribute__((aligned(16))) int4 { int x, y, z, w; };
struct uint2 { unsigned int x, y; };
struct __attribute__((aligned(16))) uint4 { unsigned int x, y, z, w; };

inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }

namespace troupe_emu {

struct Fiber;

// The fiber now running (set by the scheduler; launches are serialised).
extern Fiber* current;
extern dim3 block_idx, block_dim, grid_dim;

const dim3& thread_idx();
void* dynamic_shared();

void sync_block();
// Every live lane of the calling warp named in mask reaches this point before any goes on.
void sync_warp(unsigned mask);
// The calling lane's 8-byte exchange slot in its warp, and a lane's slot.
uint64_t* warp_slot(int lane);
int lane_id();

// mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 and m16n8k16.row.col.f32.bf16.bf16.f32, from the
// fragment layouts of the PTX ISA: every lane hands in its registers, the warp meets, each lane
// takes its four results.
void mma_m16n8k8_tf32(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0, uint32_t b1);
void mma_m16n8k16_bf16(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0, uint32_t b1);

// cvt.rna.tf32.f32: round to nearest, ties away from zero, to a 10-bit mantissa (NaN and Inf kept).
inline uint32_t cvt_rna_tf32(float x) {
    uint32_t u;
    std::memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) == 0x7f800000u) return u;
    u += 0x1000u;
    return u & 0xffffe000u;
}

template <class T>
T shfl(unsigned mask, T v, int src_lane) {
    static_assert(sizeof(T) <= 8, "shuffle of more than 8 bytes");
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    *warp_slot(lane_id()) = bits;
    sync_warp(mask);
    uint64_t got = *warp_slot(src_lane & 31);
    sync_warp(mask);
    T r;
    std::memcpy(&r, &got, sizeof(T));
    return r;
}

}  // namespace troupe_emu

#define threadIdx (troupe_emu::thread_idx())
#define blockIdx (troupe_emu::block_idx)
#define blockDim (troupe_emu::block_dim)
#define gridDim (troupe_emu::grid_dim)
#define warpSize 32

inline void __syncthreads() { troupe_emu::sync_block(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { troupe_emu::sync_warp(mask); }

template <class T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
    (void) width;
    return troupe_emu::shfl(mask, v, troupe_emu::lane_id() ^ lane_mask);
}
template <class T>
T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
    (void) width;
    return troupe_emu::shfl(mask, v, src);
}
template <class T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    (void) width;
    int lane = troupe_emu::lane_id();
    int src = lane + (int) delta;
    T mine = v;
    T got = troupe_emu::shfl(mask, v, src < 32 ? src : lane);
    return src < 32 ? got : mine;
}

// Fibers never interleave inside one of these: plain read-modify-writes are atomic here.
inline int atomicCAS(int* p, int compare, int value) {
    int old = *p;
    if (old == compare) *p = value;
    return old;
}
inline unsigned atomicCAS(unsigned* p, unsigned compare, unsigned value) {
    unsigned old = *p;
    if (old == compare) *p = value;
    return old;
}
inline int atomicAdd(int* p, int v) {
    int old = *p;
    *p += v;
    return old;
}
inline float atomicAdd(float* p, float v) {
    float old = *p;
    *p += v;
    return old;
}
inline int atomicMax(int* p, int v) {
    int old = *p;
    if (v > old) *p = v;
    return old;
}
inline int atomicExch(int* p, int v) {
    int old = *p;
    *p = v;
    return old;
}

inline float __uint_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }
inline float __int_as_float(int u) { float f; std::memcpy(&f, &u, 4); return f; }
inline int __float_as_int(float f) { int u; std::memcpy(&u, &f, 4); return u; }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
template <class T>
inline T __ldg(const T* p) { return *p; }
using std::max;
using std::min;
inline long long min(long long a, int b) { return a < b ? a : (long long) b; }
inline long long max(long long a, int b) { return a > b ? a : (long long) b; }
