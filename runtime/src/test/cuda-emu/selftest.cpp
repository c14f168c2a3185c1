// The emulator's own checks, run by build-emu.sh after each build (a failure fails the build): what
// the emulator promises about barriers, warp exchanges, launch limits and shared memory, on small
// kernels written for the purpose.
#include <cmath>
#include <cstdio>
#include <string>

#include "emu_runtime.h"

namespace {

int failures = 0;

void expect(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "emulator self-test FAILED: %s\n", what);
        failures++;
    }
}

bool run(void (*kernel)(float*, int), float* out, int n, dim3 grid, dim3 block, size_t shared, int bounds,
         std::string& error) {
    void* args[] = {&out, &n};
    troupe_emu::KernelInfo k{nullptr, bounds};
    std::function<void()> body = troupe_emu::bind_args(kernel, args);
    return troupe_emu::launch(k, grid, block, shared, body, error);
}

// Half a warp waits for the whole warp while the other half waits for the whole block: no barrier can
// complete (a GPU hangs), so the launch must fail, naming the stuck block. (A thread that has exited
// counts as arrived, as on a GPU since Volta.)
void divergent_barrier(float* out, int n) {
    if ((int) threadIdx.x < n / 2) {
        __syncwarp();
    } else {
        __syncthreads();
    }
    out[threadIdx.x] = 1.0f;
}

// Thread i reads what thread i+1 wrote before the barrier (in either scheduling order).
void neighbour_after_barrier(float* out, int n) {
    __shared__ float s[64];
    s[threadIdx.x] = (float) threadIdx.x;
    __syncthreads();
    out[blockIdx.x * n + threadIdx.x] = s[(threadIdx.x + 1) % n];
}

// The same without the barrier: ascending and descending blocks must disagree.
void neighbour_without_barrier(float* out, int n) {
    __shared__ float s[64];
    s[threadIdx.x] = (float) (blockIdx.x * 100 + threadIdx.x);
    out[blockIdx.x * n + threadIdx.x] = s[(threadIdx.x + 1) % n] - (float) (blockIdx.x * 100);
}

// A warp sum by xor shuffles, and a broadcast from lane 5.
void warp_ops(float* out, int) {
    float v = (float) (threadIdx.x + 1);
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    out[threadIdx.x] = v;
    out[64 + threadIdx.x] = __shfl_sync(0xffffffffu, (float) threadIdx.x * 2.0f, 5);
}

// Reads dynamic shared memory before writing it: the emulator starts it as NaN bytes.
void read_dynamic(float* out, int) {
    TROUPE_DYNAMIC_SHARED(float, d);
    out[threadIdx.x] = d[threadIdx.x];
}

}  // namespace

int main() {
    static float out[256];
    std::string error;

    expect(!run(divergent_barrier, out, 32, {1, 1, 1}, {32, 1, 1}, 0, 0, error), "a divergent barrier must fail");
    expect(error.find("stuck") != std::string::npos, "the stuck barrier is named");

    error.clear();
    expect(run(neighbour_after_barrier, out, 64, {2, 1, 1}, {64, 1, 1}, 0, 0, error), "barrier kernel runs");
    bool ok = true;
    for (int b = 0; b < 2; b++) {
        for (int i = 0; i < 64; i++) ok = ok && out[b * 64 + i] == (float) ((i + 1) % 64);
    }
    expect(ok, "after a barrier every thread sees its neighbour's write, in both orders");

    error.clear();
    expect(run(neighbour_without_barrier, out, 64, {2, 1, 1}, {64, 1, 1}, 0, 0, error), "racy kernel runs");
    // Block 0 runs its threads ascending: thread i reads s[i+1] before thread i+1 wrote it. Block 1 runs
    // them descending: thread i reads it after. The same race gives two answers.
    bool stale0 = false, fresh1 = true;
    for (int i = 0; i < 63; i++) {
        stale0 = stale0 || out[i] != (float) (i + 1);
        fresh1 = fresh1 && out[64 + i] == (float) (i + 1);
    }
    expect(stale0 && fresh1, "a missing barrier shows: odd blocks run their threads in the other order");

    error.clear();
    expect(run(warp_ops, out, 0, {1, 1, 1}, {64, 1, 1}, 0, 0, error), "warp kernel runs");
    ok = true;
    for (int i = 0; i < 64; i++) {
        const float sum = i < 32 ? 528.0f : 1552.0f;   // 1..32 and 33..64
        ok = ok && out[i] == sum && out[64 + i] == (float) ((i < 32 ? 5 : 37) * 2);
    }
    expect(ok, "xor-shuffle sums and lane broadcasts stay within each warp");

    error.clear();
    expect(!run(warp_ops, out, 0, {1, 1, 1}, {128, 1, 1}, 0, 64, error), "a block over __launch_bounds__ is refused");
    error.clear();
    expect(!run(warp_ops, out, 0, {1, 1, 1}, {2048, 1, 1}, 0, 0, error), "a block of 2048 threads is refused");

    error.clear();
    expect(run(read_dynamic, out, 0, {1, 1, 1}, {32, 1, 1}, 32 * sizeof(float), 0, error), "dynamic kernel runs");
    ok = true;
    for (int i = 0; i < 32; i++) ok = ok && std::isnan(out[i]);
    expect(ok, "dynamic shared memory starts as NaN");

    if (failures == 0) std::printf("emulator self-test: ok\n");
    return failures == 0 ? 0 : 1;
}
