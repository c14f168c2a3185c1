// Troupe's GEMM kernels, row-major: C = alpha * op(A) @ op(B) + beta * C, batched by blockIdx.z.
//   op(A) is (m, k): A[i*lda + kk], or A[kk*lda + i] when transposed (A stored (k, m)).
//   op(B) is (k, n): B[kk*ldb + j], or B[j*ldb + kk] when transposed (B stored (n, k)).
// beta == 0 never reads C (it may hold garbage or NaN, as after an allocation).
// Three paths:
//   sgemm_*  float32 on CUDA cores: 128x128 block tile, 8x8 outputs per thread.
//   tf32_*   float32 operands rounded to TF32, mma.sync m16n8k8, float32 accumulation.
//   bf16_*   bfloat16 operands (uint16 bits), mma.sync m16n8k16, float32 accumulation.
// Suffix nn/nt/tn/tt names transA, transB.
#include "common.cuh"

// ------------------------------------------------------------------ float32 SGEMM

#define SG_BM 128
#define SG_BN 128
#define SG_BK 8

template <bool TA, bool TB>
__device__ __forceinline__ void sgemm_body(int m, int n, int k, float alpha, const float* __restrict__ A, int lda,
                                           long long strideA, const float* __restrict__ B, int ldb, long long strideB,
                                           float beta, float* __restrict__ C, int ldc, long long strideC) {
    __shared__ __align__(16) float As[SG_BK][SG_BM];
    __shared__ __align__(16) float Bs[SG_BK][SG_BN];
    const int tid = threadIdx.x;
    const int tx = tid & 15, ty = tid >> 4;
    const int row0 = blockIdx.y * SG_BM, col0 = blockIdx.x * SG_BN;
    A += blockIdx.z * strideA;
    B += blockIdx.z * strideB;
    C += blockIdx.z * strideC;

    float acc[8][8];
#pragma unroll
    for (int r = 0; r < 8; r++)
#pragma unroll
        for (int c = 0; c < 8; c++) acc[r][c] = 0.0f;

    for (int k0 = 0; k0 < k; k0 += SG_BK) {
#pragma unroll
        for (int q = 0; q < 4; q++) {
            int e = tid + 256 * q;
            int i, kk;
            if (TA) { i = e & 127; kk = e >> 7; } else { kk = e & 7; i = e >> 3; }
            int gi = row0 + i, gk = k0 + kk;
            float v = 0.0f;
            if (gi < m && gk < k) v = TA ? A[(long long) gk * lda + gi] : A[(long long) gi * lda + gk];
            As[kk][i] = v;
        }
#pragma unroll
        for (int q = 0; q < 4; q++) {
            int e = tid + 256 * q;
            int j, kk;
            if (TB) { kk = e & 7; j = e >> 3; } else { j = e & 127; kk = e >> 7; }
            int gj = col0 + j, gk = k0 + kk;
            float v = 0.0f;
            if (gj < n && gk < k) v = TB ? B[(long long) gj * ldb + gk] : B[(long long) gk * ldb + gj];
            Bs[kk][j] = v;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < SG_BK; kk++) {
            float a[8], b[8];
            float4 a0 = *reinterpret_cast<const float4*>(&As[kk][ty * 8]);
            float4 a1 = *reinterpret_cast<const float4*>(&As[kk][ty * 8 + 4]);
            float4 b0 = *reinterpret_cast<const float4*>(&Bs[kk][tx * 8]);
            float4 b1 = *reinterpret_cast<const float4*>(&Bs[kk][tx * 8 + 4]);
            a[0] = a0.x; a[1] = a0.y; a[2] = a0.z; a[3] = a0.w; a[4] = a1.x; a[5] = a1.y; a[6] = a1.z; a[7] = a1.w;
            b[0] = b0.x; b[1] = b0.y; b[2] = b0.z; b[3] = b0.w; b[4] = b1.x; b[5] = b1.y; b[6] = b1.z; b[7] = b1.w;
#pragma unroll
            for (int r = 0; r < 8; r++)
#pragma unroll
                for (int c = 0; c < 8; c++) acc[r][c] = fmaf(a[r], b[c], acc[r][c]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int r = 0; r < 8; r++) {
        int gi = row0 + ty * 8 + r;
        if (gi >= m) continue;
#pragma unroll
        for (int c = 0; c < 8; c++) {
            int gj = col0 + tx * 8 + c;
            if (gj >= n) continue;
            float* p = C + (long long) gi * ldc + gj;
            *p = beta == 0.0f ? alpha * acc[r][c] : alpha * acc[r][c] + beta * *p;
        }
    }
}

#define GEMM_PARAMS int m, int n, int k, float alpha, const T* __restrict__ A, int lda, long long strideA, \
    const T* __restrict__ B, int ldb, long long strideB, float beta, float* __restrict__ C, int ldc, long long strideC
#define GEMM_ARGS m, n, k, alpha, A, lda, strideA, B, ldb, strideB, beta, C, ldc, strideC

#define T float
extern "C" __global__ void __launch_bounds__(256) sgemm_nn(GEMM_PARAMS) { sgemm_body<false, false>(GEMM_ARGS); }
extern "C" __global__ void __launch_bounds__(256) sgemm_nt(GEMM_PARAMS) { sgemm_body<false, true>(GEMM_ARGS); }
extern "C" __global__ void __launch_bounds__(256) sgemm_tn(GEMM_PARAMS) { sgemm_body<true, false>(GEMM_ARGS); }
extern "C" __global__ void __launch_bounds__(256) sgemm_tt(GEMM_PARAMS) { sgemm_body<true, true>(GEMM_ARGS); }
#undef T

// ------------------------------------------------------------------ tensor cores (TF32, BF16)

// Block tile 128x128, k-slab 32, 8 warps as 4 (rows) x 2 (cols), each warp 32x64 = 2x8 mma tiles.
// Shared memory holds A as [m][k] and B as [n][k] (both k-contiguous), padded so that the fragment
// reads of a warp (8 groups x 4 threads) fall on 32 distinct banks.
#define TC_BM 128
#define TC_BN 128
#define TC_BK 32

__device__ __forceinline__ uint32_t to_tf32(float x) {
#ifdef TROUPE_CUDA_EMU
    return troupe_emu::cvt_rna_tf32(x);
#else
    uint32_t r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
    return r;
#endif
}

// Operand traits: the element type in global memory, in shared memory, and the padded row length.
struct Tf32Op {
    typedef float G;
    typedef uint32_t S;
    static constexpr int LD = TC_BK + 4;   // 36 words: row stride = 4 banks
    __device__ static S convert(G v) { return to_tf32(v); }
    __device__ static G zero() { return 0.0f; }
    // 16 bytes of source elements (4 floats) -> 4 TF32 words at dst (16-byte aligned).
    __device__ static void store_vec(S* dst, const uint4& v) {
        uint4 o;
        o.x = to_tf32(__uint_as_float(v.x));
        o.y = to_tf32(__uint_as_float(v.y));
        o.z = to_tf32(__uint_as_float(v.z));
        o.w = to_tf32(__uint_as_float(v.w));
        *reinterpret_cast<uint4*>(dst) = o;
    }
};

struct Bf16Op {
    typedef uint16_t G;
    typedef uint16_t S;
    static constexpr int LD = TC_BK + 8;   // 40 halves = 20 words: row stride = 20 banks
    __device__ static S convert(G v) { return v; }
    __device__ static G zero() { return 0; }
    // 16 bytes of source elements (8 bfloat16) -> dst (16-byte aligned), unchanged.
    __device__ static void store_vec(S* dst, const uint4& v) { *reinterpret_cast<uint4*>(dst) = v; }
};

// Loads the 128x32 slab of op(A) (or the 128x32 slab of op(B)^T) starting at (r0, k0) into registers.
// kContig: the source is contiguous along k (not transposed A, transposed B).
template <class Op, bool kContig>
__device__ __forceinline__ void tc_load(const typename Op::G* __restrict__ X, int ld, int rows, int k, int r0, int k0,
                                        typename Op::G (&reg)[16]) {
    const int tid = threadIdx.x;
#pragma unroll
    for (int q = 0; q < 16; q++) {
        int e = tid + 256 * q;
        int r, kk;
        if (kContig) { kk = e & 31; r = e >> 5; } else { r = e & 127; kk = e >> 7; }
        int gr = r0 + r, gk = k0 + kk;
        typename Op::G v = Op::zero();
        if (gr < rows && gk < k) v = kContig ? X[(long long) gr * ld + gk] : X[(long long) gk * ld + gr];
        reg[q] = v;
    }
}

template <class Op, bool kContig>
__device__ __forceinline__ void tc_store(typename Op::S* S, const typename Op::G (&reg)[16]) {
    const int tid = threadIdx.x;
#pragma unroll
    for (int q = 0; q < 16; q++) {
        int e = tid + 256 * q;
        int r, kk;
        if (kContig) { kk = e & 31; r = e >> 5; } else { r = e & 127; kk = e >> 7; }
        S[r * Op::LD + kk] = Op::convert(reg[q]);
    }
}

// Register staging of one 128x32 slab: scalar loads (any shape, any alignment) or 16-byte loads
// (VEC: the host checked that the base is 16-byte aligned, ld and the batch stride are multiples of
// the vector width, and the contiguous extent (k, or the row count) is too, so a vector is either
// wholly inside the matrix or wholly outside).
template <class Op, bool kContig, bool VEC>
struct TileLoader;

template <class Op, bool kContig>
struct TileLoader<Op, kContig, false> {
    typename Op::G reg[16];
    __device__ __forceinline__ void load(const typename Op::G* __restrict__ X, int ld, int rows, int k, int r0,
                                         int k0) {
        tc_load<Op, kContig>(X, ld, rows, k, r0, k0, reg);
    }
    __device__ __forceinline__ void store(typename Op::S* S) { tc_store<Op, kContig>(S, reg); }
};

template <class Op, bool kContig>
struct TileLoader<Op, kContig, true> {
    static constexpr int V = 16 / sizeof(typename Op::G);   // elements per vector: 4 floats, 8 bf16
    static constexpr int NV = TC_BM * TC_BK / V / 256;       // vectors per thread per slab
    uint4 reg[NV];

    // Vector q of this thread: (row, k) of its first element within the slab.
    __device__ __forceinline__ void where(int q, int& r, int& kk) {
        const int c = threadIdx.x + 256 * q;
        if (kContig) { r = c / (TC_BK / V); kk = (c % (TC_BK / V)) * V; }
        else         { kk = c / (TC_BM / V); r = (c % (TC_BM / V)) * V; }
    }

    __device__ __forceinline__ void load(const typename Op::G* __restrict__ X, int ld, int rows, int k, int r0,
                                         int k0) {
#pragma unroll
        for (int q = 0; q < NV; q++) {
            int r, kk;
            where(q, r, kk);
            const int gr = r0 + r, gk = k0 + kk;
            uint4 v = make_uint4(0u, 0u, 0u, 0u);
            if (gr < rows && gk < k) {
                v = *reinterpret_cast<const uint4*>(kContig ? X + (long long) gr * ld + gk
                                                            : X + (long long) gk * ld + gr);
            }
            reg[q] = v;
        }
    }

    __device__ __forceinline__ void store(typename Op::S* S) {
#pragma unroll
        for (int q = 0; q < NV; q++) {
            int r, kk;
            where(q, r, kk);
            if (kContig) {
                Op::store_vec(S + r * Op::LD + kk, reg[q]);
            } else {
                const typename Op::G* e = reinterpret_cast<const typename Op::G*>(&reg[q]);
#pragma unroll
                for (int i = 0; i < V; i++) S[(r + i) * Op::LD + kk] = Op::convert(e[i]);
            }
        }
    }
};

__device__ __forceinline__ void mma_tf32(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                         uint32_t b0, uint32_t b1) {
#ifdef TROUPE_CUDA_EMU
    troupe_emu::mma_m16n8k8_tf32(c, a0, a1, a2, a3, b0, b1);
#else
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
#endif
}

__device__ __forceinline__ void mma_bf16(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                         uint32_t b0, uint32_t b1) {
#ifdef TROUPE_CUDA_EMU
    troupe_emu::mma_m16n8k16_bf16(c, a0, a1, a2, a3, b0, b1);
#else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
#endif
}

// One 32-wide k-slab of mma work for a warp; fragment layouts as in the PTX ISA for m16n8k8 (tf32)
// and m16n8k16 (bf16): g = lane / 4 picks the row (A) or column (B), t = lane % 4 the k pair/quad.
__device__ __forceinline__ void tc_slab(const Tf32Op*, const uint32_t* As, const uint32_t* Bs, int wm, int wn,
                                        float (&acc)[2][8][4]) {
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int ks = 0; ks < TC_BK; ks += 8) {
        uint32_t a[2][4];
#pragma unroll
        for (int mf = 0; mf < 2; mf++) {
            const uint32_t* p = As + (wm * 32 + mf * 16 + g) * Tf32Op::LD + ks + t;
            a[mf][0] = p[0];
            a[mf][1] = p[8 * Tf32Op::LD];
            a[mf][2] = p[4];
            a[mf][3] = p[8 * Tf32Op::LD + 4];
        }
#pragma unroll
        for (int nf = 0; nf < 8; nf++) {
            const uint32_t* p = Bs + (wn * 64 + nf * 8 + g) * Tf32Op::LD + ks + t;
            uint32_t b0 = p[0], b1 = p[4];
#pragma unroll
            for (int mf = 0; mf < 2; mf++) mma_tf32(acc[mf][nf], a[mf][0], a[mf][1], a[mf][2], a[mf][3], b0, b1);
        }
    }
}

__device__ __forceinline__ void tc_slab(const Bf16Op*, const uint16_t* As16, const uint16_t* Bs16, int wm, int wn,
                                        float (&acc)[2][8][4]) {
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const uint32_t* As = reinterpret_cast<const uint32_t*>(As16);
    const uint32_t* Bs = reinterpret_cast<const uint32_t*>(Bs16);
    const int LDW = Bf16Op::LD / 2;
#pragma unroll
    for (int ks = 0; ks < TC_BK / 2; ks += 8) {   // in 32-bit words: two k16 steps per slab
        uint32_t a[2][4];
#pragma unroll
        for (int mf = 0; mf < 2; mf++) {
            const uint32_t* p = As + (wm * 32 + mf * 16 + g) * LDW + ks + t;
            a[mf][0] = p[0];
            a[mf][1] = p[8 * LDW];
            a[mf][2] = p[4];
            a[mf][3] = p[8 * LDW + 4];
        }
#pragma unroll
        for (int nf = 0; nf < 8; nf++) {
            const uint32_t* p = Bs + (wn * 64 + nf * 8 + g) * LDW + ks + t;
            uint32_t b0 = p[0], b1 = p[4];
#pragma unroll
            for (int mf = 0; mf < 2; mf++) mma_bf16(acc[mf][nf], a[mf][0], a[mf][1], a[mf][2], a[mf][3], b0, b1);
        }
    }
}

template <class Op, bool TA, bool TB, bool VEC>
__device__ __forceinline__ void tc_body(int m, int n, int k, float alpha, const typename Op::G* __restrict__ A, int lda,
                                        long long strideA, const typename Op::G* __restrict__ B, int ldb,
                                        long long strideB, float beta, float* __restrict__ C, int ldc, long long strideC) {
    __shared__ __align__(16) typename Op::S As[TC_BM * Op::LD];
    __shared__ __align__(16) typename Op::S Bs[TC_BN * Op::LD];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int wm = warp >> 1, wn = warp & 1;
    const int row0 = blockIdx.y * TC_BM, col0 = blockIdx.x * TC_BN;
    A += blockIdx.z * strideA;
    B += blockIdx.z * strideB;
    C += blockIdx.z * strideC;

    float acc[2][8][4];
#pragma unroll
    for (int mf = 0; mf < 2; mf++)
#pragma unroll
        for (int nf = 0; nf < 8; nf++)
#pragma unroll
            for (int i = 0; i < 4; i++) acc[mf][nf][i] = 0.0f;

    TileLoader<Op, !TA, VEC> la;   // A is k-contiguous unless transposed
    TileLoader<Op, TB, VEC> lb;    // B is k-contiguous when transposed
    la.load(A, lda, m, k, row0, 0);
    lb.load(B, ldb, n, k, col0, 0);
    for (int k0 = 0; k0 < k; k0 += TC_BK) {
        la.store(As);
        lb.store(Bs);
        __syncthreads();
        if (k0 + TC_BK < k) {   // prefetch the next slab into registers while the tensor cores work
            la.load(A, lda, m, k, row0, k0 + TC_BK);
            lb.load(B, ldb, n, k, col0, k0 + TC_BK);
        }
        tc_slab(static_cast<const Op*>(nullptr), As, Bs, wm, wn, acc);
        __syncthreads();
    }

    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int mf = 0; mf < 2; mf++) {
#pragma unroll
        for (int nf = 0; nf < 8; nf++) {
#pragma unroll
            for (int i = 0; i < 4; i++) {
                int gi = row0 + wm * 32 + mf * 16 + g + (i >= 2 ? 8 : 0);
                int gj = col0 + wn * 64 + nf * 8 + 2 * t + (i & 1);
                if (gi < m && gj < n) {
                    float* p = C + (long long) gi * ldc + gj;
                    float v = alpha * acc[mf][nf][i];
                    *p = beta == 0.0f ? v : v + beta * *p;
                }
            }
        }
    }
}

// *v_* kernels take 16-byte vector loads; CudaGemm picks them only when the operands allow it.
#define T float
extern "C" __global__ void __launch_bounds__(256) tf32_nn(GEMM_PARAMS) { tc_body<Tf32Op, false, false, false>(GEMM_ARGS); }
extern "C" __global__ void __launch_bounds__(256) tf32_nt(GEMM_PARAMS) { tc_body<Tf32Op, false, true, false>(GEMM_ARGS); }
extern "C" __global__ void __launch_bounds__(256) tf32_tn(GEMM_PARAMS) { tc_body<Tf32Op, true, false, false>(GEMM_ARGS); }
extern "C" __global__ void __launch_bounds__(256) tf32_tt(GEMM_PARAMS) { tc_body<Tf32Op, true, true, false>(GEMM_ARGS); }
extern "C" __global__ void __launch_bounds__(256) tf32v_nn(GEMM_PARAMS) { tc_body<Tf32Op, false, false, true>(GEMM_ARGS); }
extern "C" __global__ void __launch_bounds__(256) tf32v_nt(GEMM_PARAMS) { tc_body<Tf32Op, false, true, true>(GEMM_ARGS); }
extern "C" __global__ void __launch_bounds__(256) tf32v_tn(GEMM_PARAMS) { tc_body<Tf32Op, true, false, true>(GEMM_ARGS); }
extern "C" __global__ void __launch_bounds__(256) tf32v_tt(GEMM_PARAMS) { tc_body<Tf32Op, true, true, true>(GEMM_ARGS); }
#undef T
#define T uint16_t
extern "C" __global__ void __launch_bounds__(256) bf16_nn(GEMM_PARAMS) { tc_body<Bf16Op, false, false, false>(GEMM_ARGS); }
extern "C" __global__ void __launch_bounds__(256) bf16_nt(GEMM_PARAMS) { tc_body<Bf16Op, false, true, false>(GEMM_ARGS); }
extern "C" __global__ void __launch_bounds__(256) bf16_tn(GEMM_PARAMS) { tc_body<Bf16Op, true, false, false>(GEMM_ARGS); }
extern "C" __global__ void __launch_bounds__(256) bf16_tt(GEMM_PARAMS) { tc_body<Bf16Op, true, true, false>(GEMM_ARGS); }
extern "C" __global__ void __launch_bounds__(256) bf16v_nn(GEMM_PARAMS) { tc_body<Bf16Op, false, false, true>(GEMM_ARGS); }
extern "C" __global__ void __launch_bounds__(256) bf16v_nt(GEMM_PARAMS) { tc_body<Bf16Op, false, true, true>(GEMM_ARGS); }
extern "C" __global__ void __launch_bounds__(256) bf16v_tn(GEMM_PARAMS) { tc_body<Bf16Op, true, false, true>(GEMM_ARGS); }
extern "C" __global__ void __launch_bounds__(256) bf16v_tt(GEMM_PARAMS) { tc_body<Bf16Op, true, true, true>(GEMM_ARGS); }
#undef T
