// Fused kernels for the pre-LN GPT block, as the field does them (llm.c, Megatron, Apex): the GEMM
// epilogue bias + GELU after the MLP's first projection, and the residual add fused with the
// LayerNorm that follows it (forward and backward). A pre-LN block has no LayerNorm feeding a GELU
// directly (LN -> attention, LN -> fc -> GELU -> proj), so those are the fusions that save passes over
// memory. Each kernel matches its unfused ops in kernels.cu formula for formula; column sums go through
// per-part partials reduced in a fixed order, so results are bitwise repeatable (no atomics).
#include "common.cuh"

#define GELU_K 0.7978845608028654f   // sqrt(2/pi), as gelu_fwd
#define GELU_C 0.044715f

__device__ __forceinline__ float gelu_of(float x) {
    float u = GELU_K * (x + GELU_C * x * x * x);
    return 0.5f * x * (1.0f + tanhf(u));
}

__device__ __forceinline__ float gelu_grad(float x) {
    float u = GELU_K * (x + GELU_C * x * x * x);
    float t = tanhf(u);
    float du = GELU_K * (1.0f + 3.0f * GELU_C * x * x);
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du;
}

// ------------------------------------------------------------------ bias + GELU

// preact[r, c] += bias[c]; out[r, c] = gelu(preact[r, c]). out must not alias preact.
// Launch: block 256 along columns, grid (ceil(cols / 256), min(rows, 65535)); rows grid-stride in y.
extern "C" __global__ void bias_gelu_fwd(float* __restrict__ preact, const float* __restrict__ bias,
                                         float* __restrict__ out, int rows, int cols) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    float b = bias[c];
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        long long i = (long long) r * cols + c;
        float v = preact[i] + b;
        preact[i] = v;
        out[i] = gelu_of(v);
    }
}

// dpreact = dout * gelu'(preact) (dpreact may alias dout) and per-part column sums of dpreact:
// partial[part, c] = sum over rows [part * rowsPerPart, ...) of dpreact[r, c], in row order per thread.
// Launch: block (32, 8), grid (ceil(cols / 32), ceil(rows / rowsPerPart)).
extern "C" __global__ void gelu_bwd_bias_partial(const float* __restrict__ preact, const float* dout, float* dpreact,
                                                 float* __restrict__ partial, int rows, int cols, int rowsPerPart) {
    __shared__ float part[8][33];
    int c = blockIdx.x * 32 + threadIdx.x;
    int r0 = blockIdx.y * rowsPerPart;
    int r1 = min(rows, r0 + rowsPerPart);
    float acc = 0.0f;
    if (c < cols) {
        for (int r = r0 + threadIdx.y; r < r1; r += 8) {
            long long i = (long long) r * cols + c;
            float d = dout[i] * gelu_grad(preact[i]);
            dpreact[i] = d;
            acc += d;
        }
    }
    part[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && c < cols) {
        float s = 0.0f;
        for (int k = 0; k < 8; k++) s += part[k][threadIdx.x];
        partial[(long long) blockIdx.y * cols + c] = s;
    }
}

// dst[c] += sum_{p < parts} partial[p, c], in part order. Launch: block 256, grid ceil(cols / 256).
extern "C" __global__ void col_partials_reduce(const float* __restrict__ partial, int parts, int cols,
                                               float* __restrict__ dst) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    float s = 0.0f;
    for (int p = 0; p < parts; p++) s += partial[(long long) p * cols + c];
    dst[c] += s;
}

// ------------------------------------------------------------------ residual + LayerNorm

// sum = a + b (sum may alias a), then LayerNorm of sum as layernorm_fwd (two passes: mean, centred
// variance). One warp per row. Launch: block 256 (8 rows), grid ceil(rows / 8).
extern "C" __global__ void residual_layernorm_fwd(const float* a, const float* __restrict__ b, float* sum,
                                                  const float* __restrict__ w, const float* __restrict__ bias,
                                                  float* __restrict__ out, float* __restrict__ mean,
                                                  float* __restrict__ rstd, int rows, int cols, float eps) {
    int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= rows) return;
    long long base = (long long) row * cols;
    float s = 0.0f;
    for (int c = lane; c < cols; c += 32) {
        float v = a[base + c] + b[base + c];
        sum[base + c] = v;
        s += v;
    }
    float mu = warp_sum(s) / cols;
    float var = 0.0f;
    for (int c = lane; c < cols; c += 32) { float d = sum[base + c] - mu; var += d * d; }   // own writes
    float rs = 1.0f / sqrtf(warp_sum(var) / cols + eps);
    for (int c = lane; c < cols; c += 32) out[base + c] = (sum[base + c] - mu) * rs * w[c] + bias[c];
    if (lane == 0) { mean[row] = mu; rstd[row] = rs; }
}

#define LN_BWD_ROWS 32   // rows per block of residual_layernorm_bwd

// One block per LN_BWD_ROWS rows, 256 threads. Phase 1 (a warp per row): the row means of dnorm and
// dnorm * xhat (dnorm = dout * w). Phase 2 (a thread per column, rows in order):
//   dsum = dresidual + rstd * (dnorm - mean(dnorm) - xhat * mean(dnorm * xhat))   (dsum may alias dresidual)
// and this block's column partials of dweight (dout * xhat) and dbias (dout), reduced afterwards by
// col_partials_reduce. dout and inp are read twice (the second time mostly from L2), dsum written once.
// Launch: block 256, grid ceil(rows / LN_BWD_ROWS).
extern "C" __global__ void residual_layernorm_bwd(float* dsum, const float* dresidual, const float* __restrict__ dout,
                                                  const float* __restrict__ inp, const float* __restrict__ w,
                                                  const float* __restrict__ mean, const float* __restrict__ rstd,
                                                  float* __restrict__ partialW, float* __restrict__ partialB,
                                                  int rows, int cols) {
    __shared__ float sMd[LN_BWD_ROWS];
    __shared__ float sMdx[LN_BWD_ROWS];
    __shared__ float sMu[LN_BWD_ROWS];
    __shared__ float sRs[LN_BWD_ROWS];
    int r0 = blockIdx.x * LN_BWD_ROWS;
    int n = min(LN_BWD_ROWS, rows - r0);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    for (int j = warp; j < n; j += warps) {
        int r = r0 + j;
        long long base = (long long) r * cols;
        float mu = mean[r], rs = rstd[r];
        float sd = 0.0f, sdx = 0.0f;
        for (int c = lane; c < cols; c += 32) {
            float xhat = (inp[base + c] - mu) * rs;
            float dn = dout[base + c] * w[c];
            sd += dn;
            sdx += dn * xhat;
        }
        sd = warp_sum(sd);
        sdx = warp_sum(sdx);
        if (lane == 0) { sMd[j] = sd / cols; sMdx[j] = sdx / cols; sMu[j] = mu; sRs[j] = rs; }
    }
    __syncthreads();
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float wc = w[c];
        float pw = 0.0f, pb = 0.0f;
        for (int j = 0; j < n; j++) {
            long long i = (long long) (r0 + j) * cols + c;
            float xhat = (inp[i] - sMu[j]) * sRs[j];
            float d = dout[i];
            float dn = d * wc;
            dsum[i] = dresidual[i] + sRs[j] * (dn - sMd[j] - xhat * sMdx[j]);
            pw += d * xhat;
            pb += d;
        }
        partialW[(long long) blockIdx.x * cols + c] = pw;
        partialB[(long long) blockIdx.x * cols + c] = pb;
    }
}
