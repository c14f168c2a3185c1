// Causal multi-head self-attention on a fused projection, float32.
//   qkv (B, T, 3C) with C = H*hd: q | k | v blocks, head h at columns h*hd; out (B, T, C).
//   scale = 1/sqrt(hd).
// Two forwards:
//   attn_fwd_simple  writes the softmax probabilities P (B, H, T, T) into `saved` (zeros above the
//                    diagonal), as the CPU backend does.
//   attn_fwd_flash   never materialises T x T: K/V tiles stream through shared memory with an online
//                    softmax; `saved` receives only the log-sum-exp of each row, (B, H, T).
// The backward takes P from `saved` (simple) or rebuilds it from the log-sum-exp (flash,
// attn_probs_from_lse into a scratch buffer), then runs attn_bwd_dq and attn_bwd_dkv.
#include "common.cuh"

struct AttnIdx {
    int b, h, t;
};

__device__ __forceinline__ AttnIdx attn_row(long long r, int T, int H) {
    AttnIdx a;
    a.t = (int) (r % T);
    long long bh = r / T;
    a.h = (int) (bh % H);
    a.b = (int) (bh / H);
    return a;
}

// q, k or v (part 0, 1, 2) of token (b, t), head h.
__device__ __forceinline__ long long qkv_at(int b, int t, int h, int part, int T, int C, int hd) {
    return ((long long) b * T + t) * 3 * C + (long long) part * C + (long long) h * hd;
}

// ------------------------------------------------------------------ simple forward

// One warp per query row (b, h, t). Launch: block 256 (8 rows), grid ceil(B*H*T / 8).
extern "C" __global__ void attn_fwd_simple(const float* __restrict__ qkv, float* __restrict__ out,
                                           float* __restrict__ probs, int B, int T, int H, int hd, float scale) {
    long long r = blockIdx.x * 8LL + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (r >= (long long) B * H * T) return;
    AttnIdx a = attn_row(r, T, H);
    int C = H * hd;
    const float* q = qkv + qkv_at(a.b, a.t, a.h, 0, T, C, hd);
    float* prow = probs + r * T;
    float mx = -INFINITY;
    for (int j = lane; j <= a.t; j += 32) {
        const float* k = qkv + qkv_at(a.b, j, a.h, 1, T, C, hd);
        float s = 0.0f;
        for (int d = 0; d < hd; d++) s = fmaf(q[d], k[d], s);
        s *= scale;
        prow[j] = s;
        mx = fmaxf(mx, s);
    }
    mx = warp_max(mx);
    float sum = 0.0f;
    for (int j = lane; j <= a.t; j += 32) {
        float p = expf(prow[j] - mx);
        prow[j] = p;
        sum += p;
    }
    float inv = 1.0f / warp_sum(sum);
    for (int j = lane; j < T; j += 32) prow[j] = j <= a.t ? prow[j] * inv : 0.0f;
    __syncwarp();
    float* o = out + ((long long) a.b * T + a.t) * C + (long long) a.h * hd;
    for (int d = lane; d < hd; d += 32) {
        float acc = 0.0f;
        for (int j = 0; j <= a.t; j++) acc = fmaf(prow[j], qkv[qkv_at(a.b, j, a.h, 2, T, C, hd) + d], acc);
        o[d] = acc;
    }
}

// ------------------------------------------------------------------ fused (flash-style) forward

#define FA_ROWS 32          // query rows per block: 4 warps x 8 rows
#define FA_KEYS 32          // keys per shared-memory tile, one per lane
#define FA_MAXD 4           // hd <= 128: each lane owns output dims lane, lane+32, lane+64, lane+96

// Launch: grid (ceil(T / 32), B*H), block 128, dynamic shared memory (32*hd + 32*(hd+1) + 32*hd) floats.
// Requires hd <= 128. lse[(b*H + h)*T + t] = log sum_j exp(s_tj) (max-shifted).
extern "C" __global__ void __launch_bounds__(128) attn_fwd_flash(const float* __restrict__ qkv, float* __restrict__ out,
                                                                 float* __restrict__ lse, int B, int T, int H, int hd,
                                                                 float scale) {
    TROUPE_DYNAMIC_SHARED(float, smem);
    float* Qs = smem;                       // [32][hd]
    float* Ks = Qs + FA_ROWS * hd;          // [32][hd+1], padded: lane j reads row j without bank conflicts
    float* Vs = Ks + FA_KEYS * (hd + 1);    // [32][hd]
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int q0 = blockIdx.x * FA_ROWS;
    const int bh = blockIdx.y, b = bh / H, h = bh % H;
    const int C = H * hd;

    for (int e = threadIdx.x; e < FA_ROWS * hd; e += blockDim.x) {
        int r = e / hd, d = e % hd, t = q0 + r;
        Qs[e] = t < T ? qkv[qkv_at(b, t, h, 0, T, C, hd) + d] * scale : 0.0f;   // scale folded into q
    }
    float m[8], l[8], o[8][FA_MAXD];
#pragma unroll
    for (int r = 0; r < 8; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
#pragma unroll
        for (int i = 0; i < FA_MAXD; i++) o[r][i] = 0.0f;
    }
    const int lastKey = min(q0 + FA_ROWS - 1, T - 1);
    for (int k0 = 0; k0 <= lastKey; k0 += FA_KEYS) {
        __syncthreads();   // previous tile fully consumed (and Qs written, first time round)
        for (int e = threadIdx.x; e < FA_KEYS * hd; e += blockDim.x) {
            int j = e / hd, d = e % hd, key = k0 + j;
            float kv = 0.0f, vv = 0.0f;
            if (key < T) {
                kv = qkv[qkv_at(b, key, h, 1, T, C, hd) + d];
                vv = qkv[qkv_at(b, key, h, 2, T, C, hd) + d];
            }
            Ks[j * (hd + 1) + d] = kv;
            Vs[j * hd + d] = vv;
        }
        __syncthreads();
#pragma unroll
        for (int r = 0; r < 8; r++) {
            const int lr = warp * 8 + r, t = q0 + lr;
            if (t >= T) continue;   // warp-uniform
            const int key = k0 + lane;
            float s = -INFINITY;
            if (key <= t) {
                const float* qr = Qs + lr * hd;
                const float* kr = Ks + lane * (hd + 1);
                float acc = 0.0f;
                for (int d = 0; d < hd; d++) acc = fmaf(qr[d], kr[d], acc);
                s = acc;
            }
            float mNew = fmaxf(m[r], warp_max(s));   // finite: key k0 <= t always holds
            float p = key <= t ? expf(s - mNew) : 0.0f;
            float corr = expf(m[r] - mNew);          // 0 on the first tile (m = -inf)
            l[r] = l[r] * corr + warp_sum(p);
            m[r] = mNew;
#pragma unroll
            for (int i = 0; i < FA_MAXD; i++) o[r][i] *= corr;
            const int jmax = min(FA_KEYS, t - k0 + 1);
            for (int jj = 0; jj < jmax; jj++) {
                float pj = __shfl_sync(0xffffffffu, p, jj);
#pragma unroll
                for (int i = 0; i < FA_MAXD; i++) {
                    int d = lane + 32 * i;
                    if (d < hd) o[r][i] = fmaf(pj, Vs[jj * hd + d], o[r][i]);
                }
            }
        }
    }
#pragma unroll
    for (int r = 0; r < 8; r++) {
        const int t = q0 + warp * 8 + r;
        if (t >= T) continue;
        float inv = 1.0f / l[r];
        float* orow = out + ((long long) b * T + t) * C + (long long) h * hd;
#pragma unroll
        for (int i = 0; i < FA_MAXD; i++) {
            int d = lane + 32 * i;
            if (d < hd) orow[d] = o[r][i] * inv;
        }
        if (lane == 0) lse[(long long) bh * T + t] = m[r] + logf(l[r]);
    }
}

// ------------------------------------------------------------------ backward

// Rebuilds P (B, H, T, T) from the flash forward's log-sum-exp rows. One warp per row; launch as
// attn_fwd_simple.
extern "C" __global__ void attn_probs_from_lse(const float* __restrict__ qkv, const float* __restrict__ lse,
                                               float* __restrict__ probs, int B, int T, int H, int hd, float scale) {
    long long r = blockIdx.x * 8LL + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (r >= (long long) B * H * T) return;
    AttnIdx a = attn_row(r, T, H);
    int C = H * hd;
    const float* q = qkv + qkv_at(a.b, a.t, a.h, 0, T, C, hd);
    float L = lse[r];
    float* prow = probs + r * T;
    for (int j = lane; j < T; j += 32) {
        float p = 0.0f;
        if (j <= a.t) {
            const float* k = qkv + qkv_at(a.b, j, a.h, 1, T, C, hd);
            float s = 0.0f;
            for (int d = 0; d < hd; d++) s = fmaf(q[d] * scale, k[d], s);
            p = expf(s - L);
        }
        prow[j] = p;
    }
}

// Per query row (b, h, t): dP_j = dout_t . v_j, D = sum_j P_j dP_j, dS_j = P_j (dP_j - D) (stored
// in dS, same layout as P), dq_t = scale * sum_j dS_j k_j. One warp per row; launch as attn_fwd_simple.
extern "C" __global__ void attn_bwd_dq(float* __restrict__ dqkv, const float* __restrict__ dout,
                                       const float* __restrict__ qkv, const float* __restrict__ probs,
                                       float* __restrict__ dS, int B, int T, int H, int hd, float scale) {
    long long r = blockIdx.x * 8LL + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (r >= (long long) B * H * T) return;
    AttnIdx a = attn_row(r, T, H);
    int C = H * hd;
    const float* go = dout + ((long long) a.b * T + a.t) * C + (long long) a.h * hd;
    const float* prow = probs + r * T;
    float* srow = dS + r * T;
    float dsum = 0.0f;
    for (int j = lane; j <= a.t; j += 32) {
        const float* v = qkv + qkv_at(a.b, j, a.h, 2, T, C, hd);
        float dp = 0.0f;
        for (int d = 0; d < hd; d++) dp = fmaf(go[d], v[d], dp);
        srow[j] = dp;
        dsum = fmaf(prow[j], dp, dsum);
    }
    float D = warp_sum(dsum);
    for (int j = lane; j <= a.t; j += 32) srow[j] = prow[j] * (srow[j] - D);
    __syncwarp();
    float* dq = dqkv + qkv_at(a.b, a.t, a.h, 0, T, C, hd);
    for (int d = lane; d < hd; d += 32) {
        float acc = 0.0f;
        for (int j = 0; j <= a.t; j++) acc = fmaf(srow[j], qkv[qkv_at(a.b, j, a.h, 1, T, C, hd) + d], acc);
        dq[d] = acc * scale;
    }
}

// Per key row (b, h, j): dk_j = scale * sum_{t>=j} dS_tj q_t, dv_j = sum_{t>=j} P_tj dout_t.
// One warp per key row, lanes over dims; launch as attn_fwd_simple. Fixed order: deterministic.
extern "C" __global__ void attn_bwd_dkv(float* __restrict__ dqkv, const float* __restrict__ dout,
                                        const float* __restrict__ qkv, const float* __restrict__ probs,
                                        const float* __restrict__ dS, int B, int T, int H, int hd, float scale) {
    long long r = blockIdx.x * 8LL + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (r >= (long long) B * H * T) return;
    AttnIdx a = attn_row(r, T, H);   // a.t is the key index j here
    int C = H * hd;
    long long bhBase = (r - a.t) * T;   // start of (b, h)'s T x T block
    float* dk = dqkv + qkv_at(a.b, a.t, a.h, 1, T, C, hd);
    float* dv = dqkv + qkv_at(a.b, a.t, a.h, 2, T, C, hd);
    for (int d = lane; d < hd; d += 32) {
        float ak = 0.0f, av = 0.0f;
        for (int t = a.t; t < T; t++) {
            long long pi = bhBase + (long long) t * T + a.t;
            ak = fmaf(dS[pi], qkv[qkv_at(a.b, t, a.h, 0, T, C, hd) + d], ak);
            av = fmaf(probs[pi], dout[((long long) a.b * T + t) * C + (long long) a.h * hd + d], av);
        }
        dk[d] = ak * scale;
        dv[d] = av;
    }
}
