// The CUDA emulator's scheduler: one fiber per CUDA thread, blocks one after another, barriers that
// wait for every live thread of the block (or lane of the warp), and a stuck barrier reported as a
// failed launch instead of a hang.
#include "emu_runtime.h"

#include <sys/mman.h>
#if !defined(__x86_64__) || defined(TROUPE_EMU_UCONTEXT)
#define TROUPE_EMU_SWAPCONTEXT 1
#include <ucontext.h>
#endif

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace troupe_emu {

enum class State { Ready, BlockWait, WarpWait, Done };

// A suspended execution context: where a fiber (or the scheduler) resumes. On x86-64 a switch saves
// and restores only what the ABI says a call preserves (rbx, rbp, r12-r15, the stack pointer, MXCSR's
// and the x87 control word), without the signal-mask system call of swapcontext: launches switch
// between fibers at every barrier, millions of times per training step. Elsewhere (or built with
// -DTROUPE_EMU_UCONTEXT) ucontext does it.
#if !defined(TROUPE_EMU_SWAPCONTEXT)
struct Context {
    void* sp = nullptr;
};
#else
struct Context {
    ucontext_t uc;
};
#endif

struct Fiber {
    Context ctx;
    dim3 tid;
    int linear;
    int warp;
    State state;
    char* stack;
};

Fiber* current = nullptr;
dim3 block_idx, block_dim, grid_dim;

namespace {

constexpr size_t kStack = 256 * 1024;

struct Block {
    std::vector<Fiber*> fibers;
    int live = 0;
    int at_block = 0;
    std::vector<int> warp_live, at_warp;
    std::vector<uint64_t> slots;        // 32 per warp: shuffle exchange
    std::vector<uint32_t> mma;          // 32 lanes x 6 registers per warp: mma operands
    std::vector<float> mma_c;           // 32 lanes x 4 accumulators per warp
    std::vector<unsigned char> dynamic;
    Context scheduler;
    const std::function<void()>* body = nullptr;
};

Block blk;
std::vector<Fiber*> pool;

void fiber_main();

#if !defined(TROUPE_EMU_SWAPCONTEXT)
// troupe_emu_switch(&from, to): pushes the callee-saved registers and the floating-point control
// state on the current stack, stores the stack pointer in *from, and resumes the context whose stack
// pointer is to (saved by an earlier switch, or laid out by start_context).
extern "C" __attribute__((visibility("hidden"))) void troupe_emu_switch(void** from, void* to);
asm(R"(
    .text
    .globl troupe_emu_switch
    .hidden troupe_emu_switch
    .type troupe_emu_switch, @function
troupe_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size troupe_emu_switch, .-troupe_emu_switch
)");

// Lays out f's stack as a switch would have left it, so that switching to it enters fiber_main with
// the stack aligned as after a call (and a null return address above, which it never uses).
void start_context(Fiber* f) {
    uintptr_t top = (reinterpret_cast<uintptr_t>(f->stack) + kStack) & ~static_cast<uintptr_t>(15);
    void** sp = reinterpret_cast<void**>(top);
    *--sp = nullptr;                                   // fiber_main's return address: it never returns
    *--sp = reinterpret_cast<void*>(&fiber_main);      // where the switch's ret goes
    for (int i = 0; i < 6; i++) *--sp = nullptr;       // rbp, rbx, r12-r15
    uint32_t fp[2];
    asm volatile("stmxcsr %0\n\tfnstcw %1" : "=m"(fp[0]), "=m"(fp[1]));
    fp[1] &= 0xffffu;
    *--sp = nullptr;
    std::memcpy(sp, fp, sizeof fp);                    // this thread's MXCSR and x87 control word
    f->ctx.sp = sp;
}

void switch_context(Context& from, Context& to) {
    troupe_emu_switch(&from.sp, to.sp);
}
#else
void start_context(Fiber* f) {
    getcontext(&f->ctx.uc);
    f->ctx.uc.uc_stack.ss_sp = f->stack;
    f->ctx.uc.uc_stack.ss_size = kStack;
    f->ctx.uc.uc_link = nullptr;
    makecontext(&f->ctx.uc, fiber_main, 0);
}

void switch_context(Context& from, Context& to) {
    swapcontext(&from.uc, &to.uc);
}
#endif

std::map<std::string, KernelInfo>& registry() {
    static std::map<std::string, KernelInfo> r;
    return r;
}

Fiber* fiber(int i) {
    while ((int) pool.size() <= i) {
        Fiber* f = new Fiber();
        void* s = mmap(nullptr, kStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (s == MAP_FAILED) {
            std::perror("troupe cuda emulator: fiber stack");
            std::abort();
        }
        f->stack = static_cast<char*>(s);
        pool.push_back(f);
    }
    return pool[i];
}

void release_block_if_all_arrived() {
    if (blk.at_block > 0 && blk.at_block == blk.live) {
        for (Fiber* f : blk.fibers) {
            if (f->state == State::BlockWait) f->state = State::Ready;
        }
        blk.at_block = 0;
    }
}

void release_warp_if_all_arrived(int w) {
    if (blk.at_warp[w] > 0 && blk.at_warp[w] == blk.warp_live[w]) {
        // warp w is the fibers w*32 .. w*32+31 (a fiber's warp is its linear index / 32)
        const size_t end = std::min(blk.fibers.size(), (size_t) (w + 1) * 32);
        for (size_t i = (size_t) w * 32; i < end; i++) {
            Fiber* f = blk.fibers[i];
            if (f->state == State::WarpWait) f->state = State::Ready;
        }
        blk.at_warp[w] = 0;
    }
}

void yield() {
    Fiber* me = current;
    switch_context(me->ctx, blk.scheduler);
}

void fiber_main() {
    (*blk.body)();
    Fiber* me = current;
    me->state = State::Done;
    blk.live--;
    blk.warp_live[me->warp]--;
    release_warp_if_all_arrived(me->warp);
    release_block_if_all_arrived();
    switch_context(me->ctx, blk.scheduler);
}

bool run_block(std::string& error) {
    const int n = (int) (block_dim.x * block_dim.y * block_dim.z);
    const int warps = (n + 31) / 32;
    blk.fibers.clear();
    blk.live = n;
    blk.at_block = 0;
    blk.warp_live.assign(warps, 0);
    blk.at_warp.assign(warps, 0);
    blk.slots.assign((size_t) warps * 32, 0);
    blk.mma.assign((size_t) warps * 32 * 6, 0);
    blk.mma_c.assign((size_t) warps * 32 * 4, 0.0f);
    // Shared memory starts as garbage on a GPU: NaN bytes here, so a read before the write shows.
    std::fill(blk.dynamic.begin(), blk.dynamic.end(), (unsigned char) 0xff);
    for (int i = 0; i < n; i++) {
        Fiber* f = fiber(i);
        f->linear = i;
        f->tid = {(unsigned) (i % block_dim.x), (unsigned) ((i / block_dim.x) % block_dim.y),
                  (unsigned) (i / (block_dim.x * block_dim.y))};
        f->warp = i / 32;
        f->state = State::Ready;
        blk.warp_live[f->warp]++;
        start_context(f);
        blk.fibers.push_back(f);
    }
    // Threads run from one barrier to the next in ascending order in even blocks, descending in odd
    // ones: a kernel whose result depends on that order (a missing barrier) differs between the two.
    const bool descending = ((block_idx.x + block_idx.y + block_idx.z) & 1u) != 0;
    for (;;) {
        bool ran = false;
        bool all_done = true;
        for (int i = 0; i < n; i++) {
            Fiber* f = blk.fibers[descending ? n - 1 - i : i];
            if (f->state != State::Done) all_done = false;
            if (f->state == State::Ready) {
                ran = true;
                current = f;
                switch_context(blk.scheduler, f->ctx);
                current = nullptr;
            }
        }
        if (all_done) return true;
        if (!ran) {
            int at_block = 0, at_warp = 0;
            for (Fiber* f : blk.fibers) {
                if (f->state == State::BlockWait) at_block++;
                if (f->state == State::WarpWait) at_warp++;
            }
            error = "block (" + std::to_string(block_idx.x) + "," + std::to_string(block_idx.y) + ","
                + std::to_string(block_idx.z) + ") is stuck: " + std::to_string(at_block)
                + " thread(s) wait at __syncthreads and " + std::to_string(at_warp)
                + " at a warp barrier, " + std::to_string(blk.live) + " of " + std::to_string(n)
                + " still running (a barrier not every thread reaches)";
            return false;
        }
    }
}

}  // namespace

const dim3& thread_idx() {
    return current->tid;
}

void* dynamic_shared() {
    return blk.dynamic.data();
}

int lane_id() {
    return current->linear & 31;
}

void sync_block() {
    Fiber* me = current;
    me->state = State::BlockWait;
    blk.at_block++;
    release_block_if_all_arrived();
    yield();
}

void sync_warp(unsigned mask) {
    (void) mask;
    Fiber* me = current;
    me->state = State::WarpWait;
    blk.at_warp[me->warp]++;
    release_warp_if_all_arrived(me->warp);
    yield();
}

uint64_t* warp_slot(int lane) {
    return &blk.slots[(size_t) current->warp * 32 + lane];
}

namespace {

float bf16_lo(uint32_t r) {
    uint32_t u = r << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

float bf16_hi(uint32_t r) {
    uint32_t u = r & 0xffff0000u;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

float word_f32(uint32_t r) {
    float f;
    std::memcpy(&f, &r, 4);
    return f;
}

// Hands in this lane's operands, meets the warp, and returns a pointer to the warp's operand table
// (lane-major, 6 words) and accumulators (lane-major, 4 floats).
void mma_gather(float (&c)[4], const uint32_t (&regs)[6], uint32_t** ops, float** accs) {
    const int lane = lane_id();
    uint32_t* table = &blk.mma[(size_t) current->warp * 32 * 6];
    float* acc = &blk.mma_c[(size_t) current->warp * 32 * 4];
    for (int i = 0; i < 6; i++) table[lane * 6 + i] = regs[i];
    for (int i = 0; i < 4; i++) acc[lane * 4 + i] = c[i];
    sync_warp(0xffffffffu);
    *ops = table;
    *accs = acc;
}

// D = A B + C for this lane's four outputs: c0, c1 at (g, 2t), (g, 2t+1); c2, c3 at (g+8, 2t), (g+8, 2t+1).
template <class A, class B>
void mma_finish(float (&c)[4], int k, A a_at, B b_at, const float* accs) {
    const int lane = lane_id(), g = lane >> 2, t = lane & 3;
    for (int i = 0; i < 4; i++) {
        const int row = g + (i >= 2 ? 8 : 0), col = 2 * t + (i & 1);
        // The tensor cores' internal precision is wider than float; double stands in for it.
        double s = 0.0;
        for (int kk = 0; kk < k; kk++) s += (double) a_at(row, kk) * (double) b_at(kk, col);
        c[i] = (float) (s + (double) accs[lane * 4 + i]);
    }
    sync_warp(0xffffffffu);
}

}  // namespace

void mma_m16n8k8_tf32(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0, uint32_t b1) {
    uint32_t* ops;
    float* accs;
    const uint32_t regs[6] = {a0, a1, a2, a3, b0, b1};
    mma_gather(c, regs, &ops, &accs);
    // A (16x8): a0 (g, t), a1 (g+8, t), a2 (g, t+4), a3 (g+8, t+4), with g = lane/4, t = lane%4.
    auto a_at = [ops](int row, int col) {
        const int g = row & 7, t = col & 3;
        const int reg = (row >= 8 ? 1 : 0) + (col >= 4 ? 2 : 0);
        return word_f32(ops[(g * 4 + t) * 6 + reg]);
    };
    // B (8x8): b0 (k = t, n = g), b1 (k = t+4, n = g).
    auto b_at = [ops](int k, int col) {
        const int g = col, t = k & 3;
        return word_f32(ops[(g * 4 + t) * 6 + 4 + (k >= 4 ? 1 : 0)]);
    };
    mma_finish(c, 8, a_at, b_at, accs);
}

void mma_m16n8k16_bf16(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0, uint32_t b1) {
    uint32_t* ops;
    float* accs;
    const uint32_t regs[6] = {a0, a1, a2, a3, b0, b1};
    mma_gather(c, regs, &ops, &accs);
    // A (16x16), two bf16 a register (lower index in the low half): register 0 (g, 2t..2t+1),
    // 1 (g+8, 2t..2t+1), 2 (g, 2t+8..2t+9), 3 (g+8, 2t+8..2t+9).
    auto a_at = [ops](int row, int col) {
        const int g = row & 7, t = (col & 7) >> 1;
        const int reg = (row >= 8 ? 1 : 0) + (col >= 8 ? 2 : 0);
        const uint32_t r = ops[(g * 4 + t) * 6 + reg];
        return (col & 1) ? bf16_hi(r) : bf16_lo(r);
    };
    // B (16x8): register 0 (k = 2t..2t+1, n = g), 1 (k = 2t+8..2t+9, n = g).
    auto b_at = [ops](int k, int col) {
        const int g = col, t = (k & 7) >> 1;
        const uint32_t r = ops[(g * 4 + t) * 6 + 4 + (k >= 8 ? 1 : 0)];
        return (k & 1) ? bf16_hi(r) : bf16_lo(r);
    };
    mma_finish(c, 16, a_at, b_at, accs);
}

Registration::Registration(const char* name, Trampoline kernel, int max_threads) {
    registry()[name] = KernelInfo{kernel, max_threads};
}

const KernelInfo* find_kernel(const char* name) {
    auto it = registry().find(name);
    return it == registry().end() ? nullptr : &it->second;
}

bool check_launch(const KernelInfo& k, dim3 grid, dim3 block, std::string& error) {
    const long long threads = (long long) block.x * block.y * block.z;
    if (threads <= 0 || threads > 1024 || grid.x == 0 || grid.y == 0 || grid.z == 0) {
        error = "bad launch shape: grid (" + std::to_string(grid.x) + "," + std::to_string(grid.y) + ","
            + std::to_string(grid.z) + "), block (" + std::to_string(block.x) + "," + std::to_string(block.y)
            + "," + std::to_string(block.z) + ")";
        return false;
    }
    if (k.max_threads > 0 && threads > k.max_threads) {
        error = "block of " + std::to_string(threads) + " threads exceeds the kernel's __launch_bounds__ of "
            + std::to_string(k.max_threads);
        return false;
    }
    return true;
}

bool launch(const KernelInfo& k, dim3 grid, dim3 block, size_t dynamic_bytes, const std::function<void()>& body,
            std::string& error) {
    if (!check_launch(k, grid, block, error)) return false;
    grid_dim = grid;
    block_dim = block;
    blk.body = &body;
    blk.dynamic.assign(dynamic_bytes, 0);
    for (unsigned z = 0; z < grid.z; z++) {
        for (unsigned y = 0; y < grid.y; y++) {
            for (unsigned x = 0; x < grid.x; x++) {
                block_idx = {x, y, z};
                if (!run_block(error)) return false;
            }
        }
    }
    return true;
}

}  // namespace troupe_emu
