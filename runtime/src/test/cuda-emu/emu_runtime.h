// The CUDA emulator's host side: the kernel registry (filled by the trampolines build-emu.sh
// generates, one per extern "C" kernel) and the launch the fake driver calls.
#pragma once
#include <string>
#include <type_traits>
#include <utility>

#include "troupe_emu.h"

namespace troupe_emu {

// Calls the kernel with its parameters as cuLaunchKernel passes them: one pointer per argument.
typedef void (*Trampoline)(void** params);

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
bool launch(const KernelInfo& k, dim3 grid, dim3 block, size_t dynamic_bytes, void** params, std::string& error);

template <class... A, size_t... I>
void invoke(void (*f)(A...), void** p, std::index_sequence<I...>) {
    f(*static_cast<typename std::remove_reference<A>::type*>(p[I])...);
}

template <class... A>
void invoke(void (*f)(A...), void** p) {
    invoke(f, p, std::index_sequence_for<A...>{});
}

}  // namespace troupe_emu
