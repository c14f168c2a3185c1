#!/usr/bin/env bash
# Builds the CUDA emulator: a libcuda.so.1 that runs every kernel of runtime/src/main/cuda on the CPU,
# so the Java CUDA backend (JCuda, CudaDevice, the kernels) runs its GPU tests on a machine without a
# GPU. Kernels are compiled from the same .cu files as the PTX, as C++, against troupe_emu.h.
#   build-emu.sh OUT_DIR     writes OUT_DIR/libcuda.so.1 (rebuilt only when a source is newer)
# Needs a C++17 compiler (g++ or clang++) and python3; nothing from CUDA. Without them it builds nothing
# and exits 0 (the emulator's tests then skip).
set -euo pipefail
out="${1:?usage: build-emu.sh OUT_DIR}"
here="$(cd "$(dirname "$0")" && pwd)"
cuda="$(cd "$here/../../main/cuda" && pwd)"
cxx="${CXX:-}"
if [[ -z "$cxx" ]]; then
  cxx="$(command -v g++ || command -v clang++ || true)"
fi
# Without the tools the emulator is not built and the tests that would run on it skip, naming the missing file.
if [[ -z "$cxx" ]]; then
  echo "build-emu: no C++ compiler (g++ or clang++) on PATH: the CUDA emulator is not built" >&2
  exit 0
fi
if ! command -v python3 >/dev/null; then
  echo "build-emu: no python3 on PATH: the CUDA emulator is not built" >&2
  exit 0
fi
mkdir -p "$out"
lib="$out/libcuda.so.1"
if [[ -f "$lib" && -z "$(find "$here" "$cuda" -newer "$lib" -type f -print -quit)" ]]; then
  exit 0
fi
gen="$(mktemp -d)"
trap 'rm -rf "$gen"' EXIT

# One translation unit per .cu: the kernels, then a trampoline and a registration per extern "C" kernel
# (its __launch_bounds__ kept, so an over-sized block is refused as a GPU refuses it).
python3 - "$cuda" "$gen" <<'PY'
import os, re, sys
cuda, gen = sys.argv[1], sys.argv[2]
pattern = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(?:__launch_bounds__\(([^()]*(?:\([^()]*\))?[^()]*)\)\s+)?(\w+)\s*\(')
for name in sorted(os.listdir(cuda)):
    if not name.endswith('.cu'):
        continue
    src = open(os.path.join(cuda, name)).read()
    kernels = pattern.findall(src)
    if not kernels:
        continue
    lines = ['#include "troupe_emu.h"', '#include "emu_runtime.h"', '#include "%s"' % os.path.join(cuda, name), '']
    for bounds, kernel in kernels:
        first = bounds.split(',')[0].strip() if bounds else '0'
        lines.append('static std::function<void()> troupe_emu_call_%s(void** p) { return troupe_emu::bind_args(&%s, p); }'
                     % (kernel, kernel))
        lines.append('static troupe_emu::Registration troupe_emu_reg_%s("%s", &troupe_emu_call_%s, (int) (%s));'
                     % (kernel, kernel, kernel, first))
    open(os.path.join(gen, name[:-3] + '_emu.cpp'), 'w').write('\n'.join(lines) + '\n')
PY

# Every other driver entry point JCuda links against: CUDA_ERROR_NOT_SUPPORTED, saying which.
{
  echo '#include <cstdio>'
  echo 'extern "C" {'
  while read -r sym; do
    [[ -z "$sym" ]] && continue
    if ! grep -q -E "^CUresult ${sym}\(" "$here/fake_driver.cpp"; then
      echo "int ${sym}() { std::fprintf(stderr, \"troupe cuda emulator: ${sym} is not emulated\\n\"); return 801; }"
    fi
  done < "$here/driver-symbols.txt"
  echo '}'
} > "$gen/driver_stubs.cpp"

"$cxx" -std=c++17 -O2 -g -fPIC -shared -fno-strict-aliasing -Wall -Wno-unknown-pragmas -Wno-unused-variable \
  -Wno-unused-function -I "$here" -I "$cuda" -Wl,-soname,libcuda.so.1 -o "$lib.tmp" \
  "$here/emu_runtime.cpp" "$here/fake_driver.cpp" "$gen"/*.cpp
# The emulator's own promises (barriers, warp exchanges, launch limits, shared memory) before anyone relies on it.
"$cxx" -std=c++17 -O1 -g -fno-strict-aliasing -Wall -Wno-unknown-pragmas -I "$here" -o "$gen/selftest" \
  "$here/selftest.cpp" "$here/emu_runtime.cpp"
"$gen/selftest" >&2 || { echo "build-emu: the emulator's self-test failed" >&2; exit 1; }
mv "$lib.tmp" "$lib"
echo "build-emu: $(grep -c troupe_emu_reg_ "$gen"/*_emu.cpp | awk -F: '{s += $2} END {print s}') kernels -> $lib"
