// Troupe's element-wise, normalisation, loss, embedding and optimizer kernels (float32).
// Launch shapes are chosen by CudaDevice; each kernel states the shape it expects.
// Reductions are written so every element's summation order is fixed by the launch shape alone,
// so results are bitwise repeatable run to run; no kernel uses floating-point atomics.
#include "common.cuh"

// ------------------------------------------------------------------ BLAS-like, grid-stride 1-D

extern "C" __global__ void axpy_f32(long long n, float alpha, const float* __restrict__ x, float* __restrict__ y) {
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) {
        y[i] = fmaf(alpha, x[i], y[i]);
    }
}

extern "C" __global__ void scale_f32(long long n, float alpha, float* __restrict__ x) {
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) {
        x[i] *= alpha;
    }
}

// out may alias a (residual add in place), so no __restrict__ here.
extern "C" __global__ void add_f32(long long n, const float* a, const float* b, float* out) {
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) {
        out[i] = a[i] + b[i];
    }
}

extern "C" __global__ void f32_to_bf16(long long n, const float* __restrict__ in, uint16_t* __restrict__ out) {
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) {
        out[i] = f32_to_bf16_bits(in[i]);
    }
}

extern "C" __global__ void bf16_to_f32(long long n, const uint16_t* __restrict__ in, float* __restrict__ out) {
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) {
        out[i] = bf16_bits_to_f32(in[i]);
    }
}

// ------------------------------------------------------------------ sum of squares (two passes)

// Pass 1. Launch: a FIXED grid (CudaDevice uses 256 blocks) of 256 threads, so that the partition of
// elements into partial sums never depends on the card. partial[blockIdx.x] = sum of squares (double).
extern "C" __global__ void sumsq_partial(long long n, const float* __restrict__ x, double* __restrict__ partial) {
    __shared__ double warpSums[32];
    double acc = 0.0;
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) {
        double v = (double) x[i];
        acc += v * v;
    }
    acc = warp_sum_d(acc);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (lane == 0) warpSums[warp] = acc;
    __syncthreads();
    if (warp == 0) {
        int nw = blockDim.x >> 5;
        double v = lane < nw ? warpSums[lane] : 0.0;
        v = warp_sum_d(v);
        if (lane == 0) partial[blockIdx.x] = v;
    }
}

// Pass 2. Launch: one block of 32 threads. out[0] = sum of partial[0..parts).
extern "C" __global__ void sumsq_final(int parts, const double* __restrict__ partial, double* __restrict__ out) {
    double acc = 0.0;
    for (int i = threadIdx.x; i < parts; i += 32) acc += partial[i];
    acc = warp_sum_d(acc);
    if (threadIdx.x == 0) out[0] = acc;
}

// ------------------------------------------------------------------ bias

extern "C" __global__ void bias_add(float* __restrict__ out, const float* __restrict__ bias, int rows, int cols) {
    long long n = (long long) rows * cols;
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) {
        out[i] += bias[i % cols];
    }
}

// Column sums, deterministic. Launch: block (32, 8), grid ceil(cols / 32). dbias[c] += sum_r dout[r, c].
extern "C" __global__ void bias_backward(float* __restrict__ dbias, const float* __restrict__ dout, int rows, int cols) {
    __shared__ float part[8][33];
    int c = blockIdx.x * 32 + threadIdx.x;
    float acc = 0.0f;
    if (c < cols) {
        for (int r = threadIdx.y; r < rows; r += 8) acc += dout[(long long) r * cols + c];
    }
    part[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && c < cols) {
        float s = 0.0f;
        for (int i = 0; i < 8; i++) s += part[i][threadIdx.x];
        dbias[c] += s;
    }
}

// ------------------------------------------------------------------ GELU (tanh approximation)

#define GELU_K 0.7978845608028654f   // sqrt(2/pi)
#define GELU_C 0.044715f

extern "C" __global__ void gelu_fwd(long long n, const float* inp, float* out) {
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) {
        float x = inp[i];
        float u = GELU_K * (x + GELU_C * x * x * x);
        out[i] = 0.5f * x * (1.0f + tanhf(u));
    }
}

extern "C" __global__ void gelu_bwd(long long n, const float* inp, const float* dout, float* dinp) {
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) {
        float x = inp[i];
        float u = GELU_K * (x + GELU_C * x * x * x);
        float t = tanhf(u);
        float du = GELU_K * (1.0f + 3.0f * GELU_C * x * x);
        float g = 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du;
        dinp[i] = dout[i] * g;
    }
}

// ------------------------------------------------------------------ LayerNorm

// One warp per row. Launch: block 256 (8 rows), grid ceil(rows / 8). Two passes over the row
// (mean, then centred variance) for accuracy; the second read hits L1/L2.
extern "C" __global__ void layernorm_fwd(const float* __restrict__ inp, const float* __restrict__ w,
                                         const float* __restrict__ b, float* __restrict__ out,
                                         float* __restrict__ mean, float* __restrict__ rstd,
                                         int rows, int cols, float eps) {
    int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= rows) return;
    const float* x = inp + (long long) row * cols;
    float s = 0.0f;
    for (int c = lane; c < cols; c += 32) s += x[c];
    float mu = warp_sum(s) / cols;
    float v = 0.0f;
    for (int c = lane; c < cols; c += 32) { float d = x[c] - mu; v += d * d; }
    float var = warp_sum(v) / cols;
    float rs = 1.0f / sqrtf(var + eps);
    float* o = out + (long long) row * cols;
    for (int c = lane; c < cols; c += 32) o[c] = (x[c] - mu) * rs * w[c] + b[c];
    if (lane == 0) { mean[row] = mu; rstd[row] = rs; }
}

// dinp += rstd * (dnorm - mean(dnorm) - xhat * mean(dnorm * xhat)), dnorm = dout * w.
// One warp per row; launch as layernorm_fwd.
extern "C" __global__ void layernorm_bwd_dinp(float* __restrict__ dinp, const float* __restrict__ dout,
                                              const float* __restrict__ inp, const float* __restrict__ w,
                                              const float* __restrict__ mean, const float* __restrict__ rstd,
                                              int rows, int cols) {
    int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= rows) return;
    long long base = (long long) row * cols;
    float mu = mean[row], rs = rstd[row];
    float sd = 0.0f, sdx = 0.0f;
    for (int c = lane; c < cols; c += 32) {
        float xhat = (inp[base + c] - mu) * rs;
        float dn = dout[base + c] * w[c];
        sd += dn;
        sdx += dn * xhat;
    }
    float md = warp_sum(sd) / cols;
    float mdx = warp_sum(sdx) / cols;
    for (int c = lane; c < cols; c += 32) {
        float xhat = (inp[base + c] - mu) * rs;
        float dn = dout[base + c] * w[c];
        dinp[base + c] += rs * (dn - md - xhat * mdx);
    }
}

// dweight[c] += sum_r dout*xhat, dbias[c] += sum_r dout; deterministic. Launch as bias_backward.
extern "C" __global__ void layernorm_bwd_params(float* __restrict__ dw, float* __restrict__ db,
                                                const float* __restrict__ dout, const float* __restrict__ inp,
                                                const float* __restrict__ mean, const float* __restrict__ rstd,
                                                int rows, int cols) {
    __shared__ float pw[8][33];
    __shared__ float pb[8][33];
    int c = blockIdx.x * 32 + threadIdx.x;
    float aw = 0.0f, ab = 0.0f;
    if (c < cols) {
        for (int r = threadIdx.y; r < rows; r += 8) {
            long long i = (long long) r * cols + c;
            float d = dout[i];
            aw += d * (inp[i] - mean[r]) * rstd[r];
            ab += d;
        }
    }
    pw[threadIdx.y][threadIdx.x] = aw;
    pb[threadIdx.y][threadIdx.x] = ab;
    __syncthreads();
    if (threadIdx.y == 0 && c < cols) {
        float sw = 0.0f, sb = 0.0f;
        for (int i = 0; i < 8; i++) { sw += pw[i][threadIdx.x]; sb += pb[i][threadIdx.x]; }
        dw[c] += sw;
        db[c] += sb;
    }
}

// ------------------------------------------------------------------ softmax cross-entropy

// Block-wide reduction for a 256-thread block; every thread gets the result.
__device__ __forceinline__ float block_reduce_256(float v, bool isMax, float* scratch) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = isMax ? warp_max(v) : warp_sum(v);
    __syncthreads();   // scratch may still be read from a previous reduction
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float r = scratch[0];
    for (int i = 1; i < 8; i++) r = isMax ? fmaxf(r, scratch[i]) : r + scratch[i];
    return r;
}

// One block of 256 threads per row. probs = softmax(logits); loss = logsumexp - logit[target].
extern "C" __global__ void cross_entropy_fwd(const float* __restrict__ logits, const int* __restrict__ targets,
                                             float* __restrict__ probs, float* __restrict__ losses,
                                             int rows, int vocab, int* err) {
    __shared__ float scratch[8];
    int row = blockIdx.x;
    if (row >= rows) return;
    const float* x = logits + (long long) row * vocab;
    float* p = probs + (long long) row * vocab;
    float mx = -INFINITY;
    for (int c = threadIdx.x; c < vocab; c += blockDim.x) mx = fmaxf(mx, x[c]);
    mx = block_reduce_256(mx, true, scratch);
    float s = 0.0f;
    for (int c = threadIdx.x; c < vocab; c += blockDim.x) s += expf(x[c] - mx);
    s = block_reduce_256(s, false, scratch);
    float inv = 1.0f / s;
    for (int c = threadIdx.x; c < vocab; c += blockDim.x) p[c] = expf(x[c] - mx) * inv;
    if (threadIdx.x == 0) {
        int t = targets[row];
        if (t < 0 || t >= vocab) {
            report_error(err, TROUPE_ERR_CE_TARGET, t);
            losses[row] = __int_as_float(0x7fc00000);
        } else {
            losses[row] = (logf(s) + mx) - x[t];
        }
    }
}

// dlogits = (probs - onehot(target)) * scale; grid-stride over rows*vocab (any number of rows).
extern "C" __global__ void cross_entropy_bwd(float* __restrict__ dlogits, const float* __restrict__ probs,
                                             const int* __restrict__ targets, float scale, int rows, int vocab,
                                             int* err) {
    long long n = (long long) rows * vocab;
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) {
        int row = (int) (i / vocab), c = (int) (i % vocab);
        int t = targets[row];
        if (c == 0 && (t < 0 || t >= vocab)) report_error(err, TROUPE_ERR_CE_TARGET, t);
        dlogits[i] = (probs[i] - (c == t ? 1.0f : 0.0f)) * scale;
    }
}

// ------------------------------------------------------------------ embedding

// out[r] (+)= table[ids[r]]; grid-stride over rows*dim. An id outside [0, tableRows) is reported
// and its row left untouched.
extern "C" __global__ void embedding_fwd(float* __restrict__ out, const int* __restrict__ ids,
                                         const float* __restrict__ table, int rows, int dim, int tableRows,
                                         int accumulate, int* err) {
    long long n = (long long) rows * dim;
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) {
        int r = (int) (i / dim), c = (int) (i % dim);
        int id = ids[r];
        if (id < 0 || id >= tableRows) {
            if (c == 0) report_error(err, TROUPE_ERR_EMBEDDING_ID, id);
            continue;
        }
        float v = table[(long long) id * dim + c];
        out[i] = accumulate ? out[i] + v : v;
    }
}

// Deterministic scatter-add: dtable[ids[r]] += dout[r], with the rows grouped by id on the host
// (a stable counting sort): rows order[segStart[u] .. segStart[u+1]) all have id uniqueIds[u].
// Each (id, column) is summed by one thread in ascending row order, so the result never depends on
// scheduling. Launch: grid (U, ceil(dim / 256)), block 256.
extern "C" __global__ void embedding_bwd_sorted(float* __restrict__ dtable, const float* __restrict__ dout,
                                                const int* __restrict__ order, const int* __restrict__ segStart,
                                                const int* __restrict__ uniqueIds, int dim) {
    int u = blockIdx.x;
    int c = blockIdx.y * blockDim.x + threadIdx.x;
    if (c >= dim) return;
    float acc = 0.0f;
    for (int i = segStart[u]; i < segStart[u + 1]; i++) acc += dout[(long long) order[i] * dim + c];
    dtable[(long long) uniqueIds[u] * dim + c] += acc;
}

// ------------------------------------------------------------------ AdamW

// decay = 1 - lr*weightDecay, stepSize = lr / (1 - beta1^t), bc2sqrt = sqrt(1 - beta2^t): computed on
// the host exactly as the CPU backend does, so both round alike.
extern "C" __global__ void adamw_f32(long long n, float* __restrict__ p, const float* __restrict__ g,
                                     float* __restrict__ m, float* __restrict__ v, float beta1, float beta2,
                                     float eps, float decay, float stepSize, float bc2sqrt) {
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) {
        float gi = g[i];
        float mi = beta1 * m[i] + (1.0f - beta1) * gi;
        float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        float denom = sqrtf(vi) / bc2sqrt + eps;
        p[i] = p[i] * decay - stepSize * mi / denom;
    }
}
