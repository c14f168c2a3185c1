// The CUDA emulator's host side: the kernel registry (filled by the trampolines build-emu.sh
// generates, one per extern "C" kernel) and the launch the fake driver calls.
#pragma once
#include <functional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "troupe_emu.h"

namespace troupe_emu {

// Binds the kernel to a copy of its parameters, taken from cuLaunchKernel's array of one pointer per
// argument (the caller's array dies with the call; the launch may run later).
typedef std::function<void()> (*Trampoline)(void** params);

struct KernelInfo {
    Trampoline kernel;
    int max_threads;  // the kernel's __launch_bounds__, 0 when it has none
};

struct Registration {
    Registration(const char* name, Trampoline kernel, int max_threads);
};

const KernelInfo* find_kernel(const char* name);

// Runs every block of the grid to its end; false with a sentence in error when the launch is
// refused or a block is stuck at a barrier.
// Checks the launch shape as the driver does when it is issued: false with a sentence when refused.
bool check_launch(const KernelInfo& k, dim3 grid, dim3 block, std::string& error);
bool launch(const KernelInfo& k, dim3 grid, dim3 block, size_t dynamic_bytes, const std::function<void()>& body,
            std::string& error);

template <class... A, size_t... I>
std::function<void()> bind_args(void (*f)(A...), void** p, std::index_sequence<I...>) {
    std::tuple<typename std::decay<A>::type...> args(*static_cast<typename std::decay<A>::type*>(p[I])...);
    return [f, args]() { std::apply(f, args); };
}

template <class... A>
std::function<void()> bind_args(void (*f)(A...), void** p) {
    return troupe_emu::bind_args(f, p, std::index_sequence_for<A...>{});
}

}  // namespace troupe_emu
