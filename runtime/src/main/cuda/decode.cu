// Decoding kernels over a paged KV cache (layout: io.troupe.runtime.device.PagedKvLayout).
//   values (numBlocks, blockSize, width), keys (numBlocks, width, blockSize) channel-major in a block;
//   position p of a row's sequence: block blockTables[rowTable[r] * maxBlocks + p / blockSize],
//   slot p % blockSize.
// Batch invariance: every output element is computed by one thread in a fixed order that reads
// nothing of other rows (the orders of io.troupe.runtime.device.DecodeReference, the CPU reference:
// fma chains in ascending index, the softmax sum by one thread, exp in double then rounded), so a
// row's results do not depend on how many rows the step holds, nor on the launch's grid.
#include "common.cuh"

#define DECODE_BLOCK 128

__device__ __forceinline__ int paged_block(const int* __restrict__ blockTables, const int* __restrict__ rowTable,
                                           int maxBlocks, int r, int p, int blockSize) {
    return blockTables[(long long) rowTable[r] * maxBlocks + p / blockSize];
}

// grid (ceil(width / 256), rows), 256 threads: one thread per (row, channel) writes its key and value.
extern "C" __global__ void paged_kv_write(const float* __restrict__ qkv, float* __restrict__ keys,
                                          float* __restrict__ values, const int* __restrict__ positions,
                                          const int* __restrict__ rowTable, const int* __restrict__ blockTables,
                                          int maxBlocks, int rows, int width, int blockSize) {
    const int r = blockIdx.y;
    const int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows || ch >= width) return;
    const int p = positions[r];
    const long long block = paged_block(blockTables, rowTable, maxBlocks, r, p, blockSize);
    const int slot = p % blockSize;
    const float* src = qkv + (long long) r * 3 * width;
    keys[block * blockSize * width + (long long) ch * blockSize + slot] = src[width + ch];
    values[(block * blockSize + slot) * width + ch] = src[2 * width + ch];
}

// grid (heads, rows), DECODE_BLOCK threads, dynamic shared memory (headDim + maxBlocks * blockSize + 1)
// floats: the head's query, the row's scores, the softmax sum. One block per (row, head):
//   scores: a thread per position u (strided), fma over the head's channels ascending, times scale
//   max and sum: thread 0, positions ascending; exponentials (double exp, rounded) by each position's thread
//   output: a thread per channel d (strided), fma over positions ascending, divided by the sum.
extern "C" __global__ void __launch_bounds__(DECODE_BLOCK) paged_attention(
        const float* __restrict__ qkv, const float* __restrict__ keys, const float* __restrict__ values,
        float* __restrict__ out, const int* __restrict__ positions, const int* __restrict__ rowTable,
        const int* __restrict__ blockTables, int maxBlocks, int rows, int heads, int headDim, int blockSize,
        float scale) {
    TROUPE_DYNAMIC_SHARED(float, sh);
    float* q = sh;
    float* s = sh + headDim;
    const int r = blockIdx.y;
    const int h = blockIdx.x;
    if (r >= rows || h >= heads) return;
    const int width = heads * headDim;
    const int count = positions[r] + 1;
    float* total = s + maxBlocks * blockSize;
    const float* qrow = qkv + (long long) r * 3 * width + h * headDim;
    for (int d = threadIdx.x; d < headDim; d += blockDim.x) q[d] = qrow[d];
    __syncthreads();
    for (int u = threadIdx.x; u < count; u += blockDim.x) {
        const long long block = paged_block(blockTables, rowTable, maxBlocks, r, u, blockSize);
        const float* k = keys + block * blockSize * width + (long long) h * headDim * blockSize + u % blockSize;
        float acc = 0.0f;
        for (int d = 0; d < headDim; d++) acc = fmaf(q[d], k[(long long) d * blockSize], acc);
        s[u] = acc * scale;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        float mx = -INFINITY;
        for (int u = 0; u < count; u++) mx = fmaxf(mx, s[u]);
        total[0] = mx;
    }
    __syncthreads();
    const float mx = total[0];
    for (int u = threadIdx.x; u < count; u += blockDim.x) s[u] = (float) exp((double) (s[u] - mx));
    __syncthreads();
    if (threadIdx.x == 0) {
        float sum = 0.0f;
        for (int u = 0; u < count; u++) sum += s[u];
        total[0] = sum;
    }
    __syncthreads();
    const float sum = total[0];
    float* orow = out + (long long) r * width + h * headDim;
    for (int d = threadIdx.x; d < headDim; d += blockDim.x) {
        float acc = 0.0f;
        for (int u = 0; u < count; u++) {
            const long long block = paged_block(blockTables, rowTable, maxBlocks, r, u, blockSize);
            acc = fmaf(s[u], values[(block * blockSize + u % blockSize) * width + h * headDim + d], acc);
        }
        orow[d] = acc / sum;
    }
}
