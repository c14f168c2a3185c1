#!/usr/bin/env bash
# Compiles every .cu file here to PTX for compute capability 8.0 and 9.0 and checks that ptxas
# accepts each PTX for sm_80 / sm_90. Run by Maven (runtime/pom.xml, profile cuda-ptx) whenever
# nvcc is present; usable by hand: build-ptx.sh NVCC OUT_DIR
#   NVCC     path to nvcc (ptxas is taken from the same folder, else from PATH)
#   OUT_DIR  where NAME_sm80.ptx and NAME_sm90.ptx go (target/classes/io/troupe/runtime/cuda)
set -euo pipefail
nvcc="${1:?usage: build-ptx.sh NVCC OUT_DIR}"
out="${2:?usage: build-ptx.sh NVCC OUT_DIR}"
src="$(cd "$(dirname "$0")" && pwd)"
ptxas="$(dirname "$nvcc")/ptxas"
[[ -x "$ptxas" ]] || ptxas="$(command -v ptxas || true)"
if [[ ! -x "$nvcc" ]]; then
  echo "build-ptx: nvcc not found or not executable: $nvcc" >&2
  exit 1
fi
if [[ -z "$ptxas" ]]; then
  echo "build-ptx: ptxas not found next to $nvcc nor on PATH" >&2
  exit 1
fi
mkdir -p "$out"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for cu in "$src"/*.cu; do
  name="$(basename "$cu" .cu)"
  for arch in 80 90; do
    ptx="$out/${name}_sm${arch}.ptx"
    # Rebuild only when a source is newer than the PTX (headers included).
    if [[ -f "$ptx" && -z "$(find "$src" -newer "$ptx" \( -name '*.cu' -o -name '*.cuh' \) -print -quit)" ]]; then
      continue
    fi
    "$nvcc" -std=c++17 -O3 -ptx -arch="compute_${arch}" -o "$ptx.tmp" "$cu"
    "$ptxas" -arch="sm_${arch}" -O3 -o "$tmp/${name}_sm${arch}.cubin" "$ptx.tmp"
    mv "$ptx.tmp" "$ptx"
    echo "build-ptx: ${name}.cu -> $(basename "$ptx") (ptxas sm_${arch} ok)"
  done
done
