#!/usr/bin/env bash
# GPU check for the CUDA backend, in two halves:
#
#   scripts/gpu-check.sh --prepare   (here, with Maven and a JDK; --dry-run is the same plus a
#                                    smoke run of the bundle on this machine, where the GPU tests
#                                    skip and the bench says "no GPU")
#     builds the project (mvn -o -q -DskipTests package; nvcc must be present so the PTX is in the
#     jar), and fills .bundle/ (git-ignored) with: a jlink Java runtime, the troupe jars, the runtime
#     test jar, third-party jars (linux-x86_64 natives only), the JUnit console launcher and the JVM
#     flags. Fails if .bundle/ is over its budget (default 60 MiB: the whole tree that travels to the
#     GPU machine must stay under 64 MiB).
#
#   scripts/gpu-check.sh --run       (on the GPU machine: needs only .bundle/ and bash)
#     runs every test of io.troupe.runtime.cuda (CUDA vs CPU on random inputs, the fused kernels
#     against the unfused ops, the pinned staging of the data plane; none may be skipped there), then
#     io.troupe.runtime.cuda.bench.CudaBench (GEMM TFLOP/s at 4096^3 and 8192^3 for FP32, TF32, BF16
#     against the card's ceiling, then the GPT-step hook), then io.troupe.actors.bench.CudaPipelineBench
#     (1-stage vs 2-stage pipeline on the one GPU, small and big: ms/step, ratio, loss agreement), then
#     io.troupe.models.bench.CudaDecodeBench (DeviceKvCachedGpt decode steps at batch 1, 6, 13, 16 with a
#     64-token context, small and big: per-token speedup and step ratio t16/t1; batch invariance and
#     agreement with the CPU device checked first), and ends with one SUMMARY block holding every figure
#     of the run (GEMM, GPT step, pipeline, decode, the goals met or missed), ready for docs/benchmarks.md.
#     Logs and JUnit XML go to $OUT when set (a folder the caller collects), else to .bundle/out/.
#
#   scripts/gpu-check.sh --rehearse  (here, without a GPU: --prepare, then --run on the CUDA emulator,
#                                    runtime/src/test/cuda-emu, at small sizes: every test and bench
#                                    of the GPU run goes through the same bundle and the same JCuda
#                                    calls, the kernels on the CPU. Proves the run works end to end;
#                                    its figures are the emulator's, never a GPU's.)
#
# Typical use, when the GPU machine receives a copy of this checkout (at most 64 MiB with .bundle/):
#   1. on the build machine:  scripts/gpu-check.sh --dry-run   (prints the bundle size)
#   2. on the GPU machine:    bash scripts/gpu-check.sh --run  (with .bundle/ copied along; ~9 minutes at most)
#   3. record the printed table in docs/benchmarks.md.
#
# Environment:
#   GPU_CHECK_BUDGET_MIB  bundle budget (default 60; the repo itself must fit in the rest of 64)
#   GPU_CHECK_SIZES       GEMM sizes for the bench (default 4096,8192)
#   GPU_CHECK_CEILING     card's BF16 ceiling in TFLOP/s (default 790, an H200)
#   GPU_CHECK_GPT_HOOK    class implementing io.troupe.runtime.cuda.bench.GptStepHook, run after the
#                         GEMM table (default io.troupe.models.bench.CudaGptStepHook: GPT training
#                         steps for small, big and GPT-2-medium (d 1024, 24 layers, seq 1024) in
#                         tokens/s and MFU; "none" skips it).
#   GPU_CHECK_GPT_CONFIGS presets the GPT hook times (default small,big,medium)
#   GPU_CHECK_PIPELINE    configs of the pipeline comparison (default small,big; "none" skips it)
#   GPU_CHECK_DECODE      configs of the decode bench (default small,big; "none" skips it)
#   GPU_CHECK_DECODE_ARGS more options of the decode bench (e.g. --steps=2 --warmup=1)
#   GPU_CHECK_EMULATOR    a CUDA emulator library (libcuda.so.1 from build-emu.sh) to run on instead of a GPU
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
BUNDLE="$ROOT/.bundle"
BUDGET_MIB="${GPU_CHECK_BUDGET_MIB:-60}"
JLINK_MODULES="java.base,jdk.unsupported,java.management,jdk.management,java.logging,java.xml,java.naming,jdk.zipfs,jdk.crypto.ec"
CONSOLE_VERSION="1.14.1"
CONSOLE_JAR="$HOME/.m2/repository/org/junit/platform/junit-platform-console-standalone/$CONSOLE_VERSION/junit-platform-console-standalone-$CONSOLE_VERSION.jar"

die() { echo "gpu-check: $*" >&2; exit 1; }

prepare() {
  command -v mvn >/dev/null || die "--prepare needs Maven (this is the half that runs on a build machine)"
  command -v jlink >/dev/null || die "--prepare needs a JDK with jlink"
  [[ -x /usr/local/bin/nvcc ]] || [[ -n "${TROUPE_NVCC:-}" ]] || \
    die "nvcc not found at /usr/local/bin/nvcc (set TROUPE_NVCC=PATH): without it the jar has no PTX"
  local nvccFlag=()
  [[ -n "${TROUPE_NVCC:-}" ]] && nvccFlag=("-Dtroupe.nvcc=$TROUPE_NVCC")

  echo "gpu-check: building (mvn -o -q -DskipTests package) ..."
  (cd "$ROOT" && mvn -o -q -B -DskipTests "${nvccFlag[@]}" package) || die "build failed"
  local runtimeJar
  runtimeJar="$(ls "$ROOT"/runtime/target/troupe-runtime-*.jar | grep -v -- '-tests.jar' | head -1)"
  local listing ptx   # the listing is read whole first: grep -q on a pipe would SIGPIPE unzip under pipefail
  listing="$(unzip -l "$runtimeJar")"
  for ptx in kernels gemm attention fused decode; do
    grep -q "io/troupe/runtime/cuda/${ptx}_sm90.ptx" <<<"$listing" || die "$runtimeJar has no ${ptx}_sm90.ptx"
  done

  rm -rf "$BUNDLE"
  mkdir -p "$BUNDLE/lib" "$BUNDLE/troupe"
  echo "gpu-check: third-party jars (runtime scope of models, no Pekko) ..."
  # In one reactor with package, so the troupe modules resolve from target/, never from ~/.m2.
  (cd "$ROOT" && mvn -o -q -B -DskipTests "${nvccFlag[@]}" -pl models -am package dependency:copy-dependencies \
      -DincludeScope=runtime -DexcludeGroupIds=io.troupe -DoutputDirectory="$BUNDLE/lib") \
    || die "copying dependencies failed"
  # The benches parse their options with the troupe commands' parser (actors' cli.Options, on picocli).
  (cd "$ROOT" && mvn -o -q -B -pl actors -am dependency:copy-dependencies -DincludeScope=runtime \
      -DincludeArtifactIds=picocli -DoutputDirectory="$BUNDLE/lib") || die "copying picocli failed"
  # Natives for other platforms never travel (the javacpp.platform classifier already limits them).
  find "$BUNDLE/lib" -name '*.jar' \( -name '*windows*' -o -name '*macosx*' -o -name '*android*' \
    -o -name '*ios*' -o -name '*arm64*' -o -name '*aarch64*' -o -name '*ppc64le*' -o -name '*armhf*' \) -delete

  # Only what is loaded travels: CpuBlas uses openblas_nolapack (its JNI library plus libopenblas and
  # the Fortran runtime), CudaDevice JCuda's driver binding (and the runtime one, for JCublas's stream type).
  slim_jar "$BUNDLE"/lib/openblas-*-linux-x86_64.jar 'libjniopenblas\.so$|libjniopenblas_full\.so$|/include/|/cmake/|/pkgconfig/'
  slim_jar "$BUNDLE"/lib/jcuda-natives-*.jar 'libJNvPTXCompiler|libJNvrtc'

  # actors: only its step engine and benches load here (io.troupe.actors.engine/schedule/trace import no
  # Pekko), so its Pekko dependencies stay behind; the dry run proves the pipeline bench loads.
  # bench: the jar of CudaBench, CudaGptStepHook and CudaPipelineBench (built by the package above).
  for m in runtime collectives models actors bench; do
    ls "$ROOT/$m"/target/troupe-"$m"-*.jar >/dev/null 2>&1 && cp "$ROOT/$m"/target/troupe-"$m"-*.jar "$BUNDLE/troupe/"
  done
  [[ -f "$CONSOLE_JAR" ]] || (cd "$ROOT" && mvn -q -B dependency:get \
      -Dartifact="org.junit.platform:junit-platform-console-standalone:$CONSOLE_VERSION") \
    || die "junit-platform-console-standalone $CONSOLE_VERSION not in ~/.m2 and could not be fetched"
  cp "$CONSOLE_JAR" "$BUNDLE/junit-console.jar"

  echo "gpu-check: jlink runtime ($JLINK_MODULES) ..."
  local compress="--compress=2"
  jlink --help 2>&1 | grep -q 'zip-\[0-9\]' && compress="--compress=zip-9"
  jlink --add-modules "$JLINK_MODULES" --strip-debug --no-header-files --no-man-pages $compress \
    --output "$BUNDLE/jre" || die "jlink failed"
  if command -v strip >/dev/null; then   # native symbols: libjvm.so alone carries ~4 MiB of them
    find "$BUNDLE/jre" -name '*.so' -exec strip --strip-unneeded {} \;
  fi

  source "$HERE/lib/common.sh"
  echo "$TROUPE_JVM_FLAGS" > "$BUNDLE/jvm-flags"
  git -C "$ROOT" rev-parse HEAD > "$BUNDLE/commit" 2>/dev/null || echo unknown > "$BUNDLE/commit"

  local kib mib
  kib="$(du -sk "$BUNDLE" | cut -f1)"
  mib=$(( (kib + 1023) / 1024 ))
  echo "gpu-check: bundle $BUNDLE is ${mib} MiB (budget ${BUDGET_MIB} MiB):"
  du -sh "$BUNDLE"/* | sed 's/^/  /'
  (( mib <= BUDGET_MIB )) || die "bundle is ${mib} MiB, over the ${BUDGET_MIB} MiB budget"
}

# slim_jar JAR REGEX: rewrites JAR without the entries whose names match REGEX.
slim_jar() {
  local jar="$1" pattern="$2"
  [[ -f "$jar" ]] || die "expected jar not found: $jar"
  python3 - "$jar" "$pattern" <<'PY' || die "could not slim $jar"
import re, sys, zipfile, os
jar, pattern = sys.argv[1], re.compile(sys.argv[2])
tmp = jar + ".tmp"
with zipfile.ZipFile(jar) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
    for info in src.infolist():
        if not pattern.search(info.filename):
            dst.writestr(info, src.read(info.filename))
os.replace(tmp, jar)
PY
}

classpath() {
  local cp="" j
  for j in "$BUNDLE"/troupe/*.jar "$BUNDLE"/lib/*.jar; do cp="${cp:+$cp:}$j"; done
  echo "$cp"
}

run_checks() {
  local java="$BUNDLE/jre/bin/java" out="${OUT:-$BUNDLE/out}"
  [[ -x "$java" ]] || die "no bundle at $BUNDLE: run scripts/gpu-check.sh --prepare on the build machine first"
  mkdir -p "$out"
  local flags cp status=0
  flags="$(cat "$BUNDLE/jvm-flags")"
  [[ -n "${GPU_CHECK_GPT_CONFIGS:-}" ]] && flags="$flags -Dtroupe.gpu-check.gpt-configs=$GPU_CHECK_GPT_CONFIGS"
  if [[ -n "${GPU_CHECK_EMULATOR:-}" ]]; then
    flags="$flags -Dtroupe.cuda.emulator=$GPU_CHECK_EMULATOR"
    echo "gpu-check: on the CUDA emulator ($GPU_CHECK_EMULATOR): kernels run on the CPU, figures are not a GPU's"
  fi
  cp="$(classpath)"
  echo "gpu-check: bundle of commit $(cat "$BUNDLE/commit"), $(date -u +%FT%TZ)"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

  echo "== GPU tests (io.troupe.runtime.cuda) =="
  # PtxBuildTest is left out: it needs nvcc, and the build machine ran it already.
  # shellcheck disable=SC2086
  "$java" $flags -Xmx8g -jar "$BUNDLE/junit-console.jar" execute --disable-banner --disable-ansi-colors --fail-if-no-tests \
      --details=tree --class-path "$cp" --select-package io.troupe.runtime.cuda \
      --exclude-classname '.*PtxBuildTest' --reports-dir "$out/junit" \
      2>&1 | tee "$out/gpu-tests.log" || status=1
  # A test skipped for want of a GPU fails the check there; other skips (cuBLAS absent on a CUDA 13
  # machine) are legitimate and stay visible in the tree and the summary's counts.
  if [[ "${GPU_CHECK_EXPECT_GPU:-1}" == 1 ]] && grep -q 'no usable GPU' "$out/gpu-tests.log"; then
    echo "gpu-check: some CUDA tests were skipped for want of a GPU on a machine that should have one" >&2
    status=1
  fi
  grep -E 'Assumption failed' "$out/gpu-tests.log" | grep -v 'no usable GPU' | sed 's/^/gpu-check: skipped: /' || true

  echo "== CudaBench =="
  local hook=() hookClass="${GPU_CHECK_GPT_HOOK:-io.troupe.models.bench.CudaGptStepHook}"
  [[ "$hookClass" != none ]] && hook=("--gpt-hook=$hookClass")
  # shellcheck disable=SC2086
  "$java" $flags -Xmx8g -cp "$cp" io.troupe.runtime.cuda.bench.CudaBench \
      --sizes="${GPU_CHECK_SIZES:-4096,8192}" --ceiling-tflops="${GPU_CHECK_CEILING:-790}" "${hook[@]}" \
      2>&1 | tee "$out/gpu-bench.log" || status=1

  echo "== CudaPipelineBench (1-stage vs 2-stage on one GPU) =="
  local pipe="${GPU_CHECK_PIPELINE:-small,big}"
  if [[ "$pipe" != none ]]; then
    # shellcheck disable=SC2086
    "$java" $flags -Xmx8g -cp "$cp" io.troupe.actors.bench.CudaPipelineBench --configs="$pipe" \
        ${GPU_CHECK_PIPELINE_ARGS:-} 2>&1 | tee "$out/gpu-pipeline.log" || status=1
  else
    echo "pipeline comparison skipped (GPU_CHECK_PIPELINE=none)" | tee "$out/gpu-pipeline.log"
  fi

  echo "== CudaDecodeBench (DeviceKvCachedGpt decode steps, batch 1..16) =="
  local decode="${GPU_CHECK_DECODE:-small,big}"
  if [[ "$decode" != none ]]; then
    # shellcheck disable=SC2086
    "$java" $flags -Xmx8g -cp "$cp" io.troupe.models.bench.CudaDecodeBench --configs="$decode" \
        ${GPU_CHECK_DECODE_ARGS:-} 2>&1 | tee "$out/gpu-decode.log" || status=1
  else
    echo "decode bench skipped (GPU_CHECK_DECODE=none)" | tee "$out/gpu-decode.log"
  fi
  summary "$out" | tee "$out/summary.md" || true
  return $status
}

# table LOG REGEX: the markdown table whose header line matches REGEX (header through its last row);
# fails when there is none.
table() {
  [[ -f "$1" ]] || return 1
  awk -v re="$2" 'on && !/^\|/ { exit } $0 ~ re { on = 1; n++ } on { print } END { exit n ? 0 : 1 }' "$1"
}

# summary OUT: one block with every figure of the run, to paste into docs/benchmarks.md.
summary() {
  local out="$1" ceiling="${GPU_CHECK_CEILING:-790}"
  echo
  echo "===== SUMMARY (paste into docs/benchmarks.md) ====="
  [[ -n "${GPU_CHECK_EMULATOR:-}" ]] && echo "ON THE CUDA EMULATOR: every figure and goal line below is the CPU emulation's, never a GPU's: do not record them"
  echo "commit $(cat "$BUNDLE/commit"), $(date -u +%F)"
  echo "GPU: $( (command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total \
      --format=csv,noheader | head -1) || echo 'nvidia-smi not found')"
  grep -m1 '^device ' "$out/gpu-bench.log" 2>/dev/null || echo "device: (CudaBench did not open a GPU)"
  echo "tests (io.troupe.runtime.cuda): $(grep -Eo '\[ *[0-9]+ tests (successful|failed|skipped|aborted)' \
      "$out/gpu-tests.log" 2>/dev/null | tr -d '[' | tr -s ' ' | paste -sd, - || echo 'no log')"
  grep -E 'Assumption failed' "$out/gpu-tests.log" 2>/dev/null | sed -E 's/.*Assumption failed: //' | sort | uniq -c \
    | sed 's/^ */  skipped (count, reason): /' || true
  echo
  echo "GEMM (Troupe's kernels; cuBLAS rows where it loads), against ${ceiling} TFLOP/s BF16:"
  table "$out/gpu-bench.log" '^\| n \| gemm' || echo "(no GEMM table)"
  echo
  echo "GPT training step on one GPU (BF16 GEMMs, flash attention):"
  table "$out/gpu-bench.log" '^\| model \| batch x seq \| params' || echo "(no GPT table)"
  echo
  echo "1-stage vs 2-stage pipeline on the one GPU (one process, staged through pinned host memory):"
  grep -E '^1-stage vs' "$out/gpu-pipeline.log" 2>/dev/null || true
  table "$out/gpu-pipeline.log" '^\| model \| batch x seq \| micro-batches' || echo "(no pipeline table)"
  grep -E '^pipeline ' "$out/gpu-pipeline.log" 2>/dev/null || true
  echo
  echo "Decode steps of DeviceKvCachedGpt on the one GPU (64-token context, FP32 row-invariant linears):"
  table "$out/gpu-decode.log" '^\| model \| batch \| ms/step' || echo "(no decode table)"
  echo
  echo "Goals:"
  awk -F'|' '$2 ~ /^ *8192 *$/ && $3 ~ /troupe BF16/ { gsub(/[ %]/, "", $6); g = ($6 + 0 >= 50) ? "met" : "MISSED";
      print "  BF16 GEMM 8192^3 >= 50% of ceiling: " $6 "% (" g ")"; f = 1 }
      END { if (!f) print "  BF16 GEMM 8192^3 >= 50% of ceiling: not measured" }' "$out/gpu-bench.log" 2>/dev/null || true
  awk -F'|' '$2 ~ /^ *medium *$/ { m = $7; gsub(/[ %]/, "", m); g = (m + 0 >= 25) ? "met" : "MISSED";
      print "  GPT-2-medium step >= 25% MFU: " m "% (" g ")"; f = 1 }
      END { if (!f) print "  GPT-2-medium step >= 25% MFU: not measured" }' "$out/gpu-bench.log" 2>/dev/null || true
  grep -E '^decode [a-z]+ device=' "$out/gpu-decode.log" 2>/dev/null | sed 's/^/  /' \
    || echo "  decode speedup at 16 >= 4 and step ratio t16/t1 <= 2: not measured"
  echo "===== END SUMMARY ====="
}

case "${1:---prepare}" in
  --prepare) prepare ;;
  --dry-run)
    prepare
    echo "gpu-check: dry run: the bundle's launcher and bench here (no GPU: tests skip, bench exits 2)"
    GPU_CHECK_EXPECT_GPU=0 OUT="$BUNDLE/out" run_checks || true
    grep -Eq '\[ *[1-9][0-9]* tests successful' "$BUNDLE/out/gpu-tests.log" || die "the bundled JUnit launcher ran no tests"
    grep -Eq '\[ *0 tests failed' "$BUNDLE/out/gpu-tests.log" || die "tests failed in the bundle (see above)"
    grep -q 'no GPU.*GPT hook .* loaded' "$BUNDLE/out/gpu-bench.log" || grep -q 'TFLOP' "$BUNDLE/out/gpu-bench.log" \
      || die "the bundled bench or its GPT hook did not load"
    grep -q 'pipeline bench: no GPU' "$BUNDLE/out/gpu-pipeline.log" || grep -q '^pipeline small' "$BUNDLE/out/gpu-pipeline.log" \
      || die "the bundled pipeline bench did not load"
    grep -q 'decode bench: no GPU' "$BUNDLE/out/gpu-decode.log" || grep -q '^decode small' "$BUNDLE/out/gpu-decode.log" \
      || die "the bundled decode bench did not load"
    grep -q '===== END SUMMARY' "$BUNDLE/out/summary.md" || die "the summary block was not printed"
    echo "gpu-check: dry run: the pipeline bench from the bundle, on the CPU (tiny, 1 step: proves the engine runs there)"
    # shellcheck disable=SC2046
    "$BUNDLE/jre/bin/java" $(cat "$BUNDLE/jvm-flags") -cp "$(classpath)" io.troupe.actors.bench.CudaPipelineBench \
        --device=cpu --configs=tiny --steps=1 --warmup=0 --precision=fp32 | tee "$BUNDLE/out/cpu-pipeline.log" \
      || die "the pipeline bench failed on the CPU from the bundle"
    grep -q '^pipeline tiny 1stage_ms=' "$BUNDLE/out/cpu-pipeline.log" || die "the pipeline bench printed no result"
    echo "gpu-check: dry run: the decode bench from the bundle, on the CPU device (small, 3 steps: the same code path)"
    # shellcheck disable=SC2046
    "$BUNDLE/jre/bin/java" $(cat "$BUNDLE/jvm-flags") -cp "$(classpath)" io.troupe.models.bench.CudaDecodeBench \
        --device=cpu --configs=small --steps=3 --warmup=1 | tee "$BUNDLE/out/cpu-decode.log" \
      || die "the decode bench failed on the CPU from the bundle"
    grep -q '^decode small device=cpu .*batch_invariant=yes' "$BUNDLE/out/cpu-decode.log" \
      || die "the decode bench printed no result, or its logits were not batch-invariant"
    rm -rf "$BUNDLE/out"
    echo "gpu-check: dry run OK" ;;
  --rehearse)
    prepare
    bash "$ROOT/runtime/src/test/cuda-emu/build-emu.sh" "$ROOT/runtime/target/cuda-emu" || die "the CUDA emulator did not build"
    GPU_CHECK_EMULATOR="$ROOT/runtime/target/cuda-emu/libcuda.so.1" GPU_CHECK_SIZES=256 GPU_CHECK_GPT_CONFIGS=tiny \
      GPU_CHECK_PIPELINE=tiny GPU_CHECK_PIPELINE_ARGS="--steps=1 --warmup=0" \
      GPU_CHECK_DECODE=small GPU_CHECK_DECODE_ARGS="--steps=2 --warmup=1" OUT="$BUNDLE/out" run_checks \
      || die "the rehearsal on the CUDA emulator failed (logs in $BUNDLE/out)"
    grep -q '===== END SUMMARY' "$BUNDLE/out/summary.md" || die "the summary block was not printed"
    echo "gpu-check: rehearsal on the CUDA emulator OK (logs in $BUNDLE/out)" ;;
  --run) run_checks ;;
  *) die "unknown option '$1': expected --prepare, --dry-run, --rehearse or --run" ;;
esac
