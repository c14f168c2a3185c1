#!/usr/bin/env bash
# GPU check for the CUDA backend, in two halves:
#
#   scripts/gpu-check.sh --prepare   (here, with Maven, a JDK and xz; --dry-run is the same plus a
#                                    smoke run of the packed bundle on this machine, where the GPU
#                                    tests skip and the benches say "no GPU", then each bench on the CPU)
#     builds the project (mvn -o -q -DskipTests package; nvcc must be present so the PTX is in the
#     jar) and lays out, in target/gpu-bundle: a jlink Java runtime, the troupe jars, the runtime test
#     jar, the third-party jars of actors (Pekko and Pekko HTTP for the serve bench; linux-x86_64
#     natives only), the JUnit console launcher and the JVM flags. Then packs that tree as
#     .bundle/troupe-gpu.tar.xz (git-ignored): jars rewritten uncompressed and one xz stream over the
#     whole tree, about 40 MiB for about 190 MiB unpacked. Fails if .bundle/ is over its budget
#     (default 60 MiB: the whole tree that travels to the GPU machine must stay under 64 MiB).
#
#   scripts/gpu-check.sh --run       (on the GPU machine: needs only .bundle/, bash, and tar with xz
#                                    or python3 to unpack it into $GPU_CHECK_UNPACK, default
#                                    ${TMPDIR:-/tmp}/troupe-gpu-bundle)
#     runs, by part (GPU_CHECK_PARTS, default tests,bench,pipeline,decode,serve):
#       tests     every test of io.troupe.runtime.cuda (CUDA vs CPU on random inputs, the fused kernels
#                 against the unfused ops, the pinned staging of the data plane; none may be skipped there)
#       bench     io.troupe.runtime.cuda.bench.CudaBench (GEMM TFLOP/s at 4096^3 and 8192^3 for FP32,
#                 TF32, BF16 against the card's ceiling, then the GPT-step hook)
#       pipeline  io.troupe.actors.bench.CudaPipelineBench (1-stage vs 2-stage pipeline on the one GPU,
#                 small and big: ms/step, ratio, loss agreement)
#       decode    io.troupe.models.bench.CudaDecodeBench (DeviceKvCachedGpt decode steps at batch 1, 6,
#                 13, 16 with a 64-token context, small and big: per-token speedup and step ratio t16/t1;
#                 batch invariance and agreement with the CPU device checked first)
#       serve     io.troupe.actors.bench.ServeBench --device cuda (scripts/bench serve on the GPU: a
#                 max-batch 1 server, then a continuous-batching one, 16 streaming HTTP clients,
#                 32-byte prompts: tokens/s, speedup, TTFT, TPOT p99 of both)
#     and ends with one SUMMARY block holding every figure of the run and the goals met or missed,
#     ready for docs/benchmarks.md. Logs and JUnit XML go to $OUT when set (a folder the caller
#     collects), else to .bundle/out/.
#
#   scripts/gpu-check.sh --rehearse  (here, without a GPU: --prepare, then --run on the CUDA emulator,
#                                    runtime/src/test/cuda-emu, at small sizes: every test and bench
#                                    of the GPU run goes through the same bundle and the same JCuda
#                                    calls, the kernels on the CPU. Proves the run works end to end;
#                                    its figures are the emulator's, never a GPU's.)
#
# Typical use, when the GPU machine receives a copy of this checkout (at most 64 MiB with .bundle/):
#   1. on the build machine:  scripts/gpu-check.sh --dry-run   (prints the bundle size)
#   2. on the GPU machine:    bash scripts/gpu-check.sh --run  (with .bundle/ copied along). All parts
#      take up to about 11 minutes; where one command may run 10 at most, run it in two:
#      GPU_CHECK_PARTS=tests,decode,serve first (the serving goals), then GPU_CHECK_PARTS=bench,pipeline.
#   3. record the printed table in docs/benchmarks.md.
#
# Environment:
#   GPU_CHECK_PARTS       the parts to run (above; default all, in that order)
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
#   GPU_CHECK_SERVE       models of the serve bench (default small; "none" skips it)
#   GPU_CHECK_SERVE_ARGS  its options (default --requests 1024 --settle-rounds 10; scripts/bench serve --help)
#   GPU_CHECK_UNPACK      where --run unpacks the bundle (default ${TMPDIR:-/tmp}/troupe-gpu-bundle)
#   GPU_CHECK_TREE        where --prepare lays it out (default target/gpu-bundle)
#   GPU_CHECK_EMULATOR    a CUDA emulator library (libcuda.so.1 from build-emu.sh) to run on instead of a GPU
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
BUNDLE="$ROOT/.bundle"                               # what travels: the archive, its commit, out/
ARCHIVE="$BUNDLE/troupe-gpu.tar.xz"
TREE="${GPU_CHECK_TREE:-$ROOT/target/gpu-bundle}"    # the unpacked bundle, built here
RUN=""                                               # the unpacked bundle a run uses (unpack sets it)
BUDGET_MIB="${GPU_CHECK_BUDGET_MIB:-60}"
JLINK_MODULES="java.base,jdk.unsupported,java.management,jdk.management,java.logging,java.xml,java.naming,jdk.zipfs,jdk.crypto.ec,java.net.http"
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

  rm -rf "$TREE"
  mkdir -p "$TREE/lib" "$TREE/troupe"
  echo "gpu-check: third-party jars (runtime scope of actors: Pekko, Pekko HTTP, the natives) ..."
  # In one reactor with package, so the troupe modules resolve from target/, never from ~/.m2.
  (cd "$ROOT" && mvn -o -q -B -DskipTests "${nvccFlag[@]}" -pl actors -am package dependency:copy-dependencies \
      -DincludeScope=runtime -DexcludeGroupIds=io.troupe -DoutputDirectory="$TREE/lib") \
    || die "copying dependencies failed"
  # Natives for other platforms never travel (the javacpp.platform classifier already limits them).
  find "$TREE/lib" -name '*.jar' \( -name '*windows*' -o -name '*macosx*' -o -name '*android*' \
    -o -name '*ios*' -o -name '*arm64*' -o -name '*aarch64*' -o -name '*ppc64le*' -o -name '*armhf*' \) -delete

  # Only what is loaded travels: CpuBlas uses openblas_nolapack (its JNI library plus libopenblas and
  # the Fortran runtime), CudaDevice JCuda's driver binding (and the runtime one, for JCublas's stream type).
  slim_jar "$TREE"/lib/openblas-*-linux-x86_64.jar 'libjniopenblas\.so$|libjniopenblas_full\.so$|/include/|/cmake/|/pkgconfig/'
  slim_jar "$TREE"/lib/jcuda-natives-*.jar 'libJNvPTXCompiler|libJNvrtc'

  # bench: the jar of CudaBench, CudaGptStepHook, CudaPipelineBench, CudaDecodeBench and ServeBench.
  for m in runtime collectives models actors bench; do
    ls "$ROOT/$m"/target/troupe-"$m"-*.jar >/dev/null 2>&1 && cp "$ROOT/$m"/target/troupe-"$m"-*.jar "$TREE/troupe/"
  done
  [[ -f "$CONSOLE_JAR" ]] || (cd "$ROOT" && mvn -q -B dependency:get \
      -Dartifact="org.junit.platform:junit-platform-console-standalone:$CONSOLE_VERSION") \
    || die "junit-platform-console-standalone $CONSOLE_VERSION not in ~/.m2 and could not be fetched"
  cp "$CONSOLE_JAR" "$TREE/junit-console.jar"

  echo "gpu-check: jlink runtime ($JLINK_MODULES) ..."
  # Uncompressed: the archive below compresses the whole tree at once, far better than jlink's zip.
  jlink --add-modules "$JLINK_MODULES" --strip-debug --no-header-files --no-man-pages \
    --output "$TREE/jre" || die "jlink failed"
  if command -v strip >/dev/null; then   # native symbols: libjvm.so alone carries ~4 MiB of them
    find "$TREE/jre" -name '*.so' -exec strip --strip-unneeded {} \;
  fi

  source "$HERE/lib/common.sh"
  echo "$TROUPE_JVM_FLAGS" > "$TREE/jvm-flags"
  git -C "$ROOT" rev-parse HEAD > "$TREE/commit" 2>/dev/null || echo unknown > "$TREE/commit"

  # Jars rewritten uncompressed, then one xz stream over the whole tree: class files of different jars
  # share most of their bytes, which per-entry deflate cannot see (about 90 MiB of jars and runtime
  # travel as about 40).
  echo "gpu-check: packing $ARCHIVE (xz over the uncompressed jars and runtime; a minute or two) ..."
  store_jars "$TREE"
  command -v xz >/dev/null || die "--prepare needs xz to pack the bundle"
  rm -rf "$BUNDLE"
  mkdir -p "$BUNDLE"
  (cd "$TREE" && tar -cf - --sort=name --owner=0 --group=0 --numeric-owner . | xz -9 -T0 > "$ARCHIVE.tmp") \
    || die "packing the bundle failed"
  mv "$ARCHIVE.tmp" "$ARCHIVE"
  cp "$TREE/commit" "$BUNDLE/commit"

  local kib mib
  kib="$(du -sk "$BUNDLE" | cut -f1)"
  mib=$(( (kib + 1023) / 1024 ))
  echo "gpu-check: bundle $BUNDLE is ${mib} MiB (budget ${BUDGET_MIB} MiB; unpacked $(du -sh "$TREE" | cut -f1)):"
  du -sh "$TREE"/* | sed 's/^/  unpacked: /'
  (( mib <= BUDGET_MIB )) || die "bundle is ${mib} MiB, over the ${BUDGET_MIB} MiB budget"
}

# store_jars DIR: rewrites every jar under DIR with its entries stored (no compression), same order
# and contents: signatures stay valid, and the archive's xz compresses across jars.
store_jars() {
  python3 - "$1" <<'PY' || die "could not rewrite the jars uncompressed"
import os, sys, zipfile
for root, _, files in os.walk(sys.argv[1]):
    for name in files:
        if not name.endswith(".jar"):
            continue
        jar = os.path.join(root, name)
        tmp = jar + ".tmp"
        with zipfile.ZipFile(jar) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as dst:
            for info in src.infolist():
                data = src.read(info.filename)
                info.compress_type = zipfile.ZIP_STORED
                dst.writestr(info, data)
        os.replace(tmp, jar)
PY
}

# unpack: sets RUN to an unpacked bundle: the archive's contents in GPU_CHECK_UNPACK (default
# ${TMPDIR:-/tmp}/troupe-gpu-bundle), unpacked afresh (tar with xz, else Python's tarfile).
unpack() {
  [[ -f "$ARCHIVE" ]] || die "no bundle at $ARCHIVE: run scripts/gpu-check.sh --prepare on the build machine first"
  RUN="${GPU_CHECK_UNPACK:-${TMPDIR:-/tmp}/troupe-gpu-bundle}"
  rm -rf "$RUN"
  mkdir -p "$RUN"
  if command -v xz >/dev/null && tar --version >/dev/null 2>&1; then
    tar -C "$RUN" -xJf "$ARCHIVE" || die "could not unpack $ARCHIVE"
  else
    python3 - "$ARCHIVE" "$RUN" <<'PY' || die "could not unpack $ARCHIVE (no xz, and Python's tarfile failed)"
import sys, tarfile
with tarfile.open(sys.argv[1]) as t:
    t.extractall(sys.argv[2], **({"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}))
PY
  fi
  [[ -x "$RUN/jre/bin/java" ]] || die "$ARCHIVE unpacked without an executable jre/bin/java"
  echo "gpu-check: unpacked $ARCHIVE into $RUN ($(du -sh "$RUN" | cut -f1))"
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
  for j in "$RUN"/troupe/*.jar "$RUN"/lib/*.jar; do cp="${cp:+$cp:}$j"; done
  echo "$cp"
}

# part NAME: whether GPU_CHECK_PARTS (default: all of them) names NAME.
part() {
  [[ ",${GPU_CHECK_PARTS:-tests,bench,pipeline,decode,serve}," == *",$1,"* ]]
}

run_checks() {
  [[ -n "$RUN" ]] || unpack
  local java="$RUN/jre/bin/java" out="${OUT:-$BUNDLE/out}"
  mkdir -p "$out"
  local flags cp status=0
  flags="$(cat "$RUN/jvm-flags")"
  [[ -n "${GPU_CHECK_GPT_CONFIGS:-}" ]] && flags="$flags -Dtroupe.gpu-check.gpt-configs=$GPU_CHECK_GPT_CONFIGS"
  if [[ -n "${GPU_CHECK_EMULATOR:-}" ]]; then
    flags="$flags -Dtroupe.cuda.emulator=$GPU_CHECK_EMULATOR"
    echo "gpu-check: on the CUDA emulator ($GPU_CHECK_EMULATOR): kernels run on the CPU, figures are not a GPU's"
  fi
  cp="$(classpath)"
  echo "gpu-check: bundle of commit $(cat "$RUN/commit"), $(date -u +%FT%TZ), parts ${GPU_CHECK_PARTS:-tests,bench,pipeline,decode,serve}"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

  if part tests; then
    echo "== GPU tests (io.troupe.runtime.cuda) =="
    # PtxBuildTest is left out: it needs nvcc, and the build machine ran it already.
    # shellcheck disable=SC2086
    "$java" $flags -Xmx8g -jar "$RUN/junit-console.jar" execute --disable-banner --disable-ansi-colors \
        --fail-if-no-tests --details=tree --class-path "$cp" --select-package io.troupe.runtime.cuda \
        --exclude-classname '.*PtxBuildTest' --reports-dir "$out/junit" \
        2>&1 | tee "$out/gpu-tests.log" || status=1
    # A test skipped for want of a GPU fails the check there; other skips (cuBLAS absent on a CUDA 13
    # machine) are legitimate and stay visible in the tree and the summary's counts.
    if [[ "${GPU_CHECK_EXPECT_GPU:-1}" == 1 ]] && grep -q 'no usable GPU' "$out/gpu-tests.log"; then
      echo "gpu-check: some CUDA tests were skipped for want of a GPU on a machine that should have one" >&2
      status=1
    fi
    grep -E 'Assumption failed' "$out/gpu-tests.log" | grep -v 'no usable GPU' | sed 's/^/gpu-check: skipped: /' || true
  fi

  if part bench; then
    echo "== CudaBench =="
    local hook=() hookClass="${GPU_CHECK_GPT_HOOK:-io.troupe.models.bench.CudaGptStepHook}"
    [[ "$hookClass" != none ]] && hook=("--gpt-hook=$hookClass")
    # shellcheck disable=SC2086
    "$java" $flags -Xmx8g -cp "$cp" io.troupe.runtime.cuda.bench.CudaBench \
        --sizes="${GPU_CHECK_SIZES:-4096,8192}" --ceiling-tflops="${GPU_CHECK_CEILING:-790}" "${hook[@]}" \
        2>&1 | tee "$out/gpu-bench.log" || status=1
  fi

  local pipe="${GPU_CHECK_PIPELINE:-small,big}"
  if part pipeline && [[ "$pipe" != none ]]; then
    echo "== CudaPipelineBench (1-stage vs 2-stage on one GPU) =="
    # shellcheck disable=SC2086
    "$java" $flags -Xmx8g -cp "$cp" io.troupe.actors.bench.CudaPipelineBench --configs="$pipe" \
        ${GPU_CHECK_PIPELINE_ARGS:-} 2>&1 | tee "$out/gpu-pipeline.log" || status=1
  fi

  local decode="${GPU_CHECK_DECODE:-small,big}"
  if part decode && [[ "$decode" != none ]]; then
    echo "== CudaDecodeBench (DeviceKvCachedGpt decode steps, batch 1..16) =="
    # shellcheck disable=SC2086
    "$java" $flags -Xmx8g -cp "$cp" io.troupe.models.bench.CudaDecodeBench --configs="$decode" \
        ${GPU_CHECK_DECODE_ARGS:-} 2>&1 | tee "$out/gpu-decode.log" || status=1
  fi

  local serve="${GPU_CHECK_SERVE:-small}" m
  if part serve && [[ "$serve" != none ]]; then
    : > "$out/gpu-serve.log"
    for m in ${serve//,/ }; do
      echo "== ServeBench $m on the GPU (troupe serve --device cuda: max-batch 1, then continuous batching) ==" \
        | tee -a "$out/gpu-serve.log"
      # The serving goals' own bench: 16 streaming clients over HTTP on 127.0.0.1, 32-byte prompts.
      # shellcheck disable=SC2086
      "$java" $flags -Xmx16g -cp "$cp" io.troupe.actors.bench.ServeBench --device cuda --model "$m" \
          ${GPU_CHECK_SERVE_ARGS:---requests 1024 --settle-rounds 10} 2>&1 | tee -a "$out/gpu-serve.log" || status=1
    done
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
  echo "commit $(cat "$RUN/commit"), $(date -u +%F)"
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
  echo "Serving on the one GPU (scripts/bench serve --device cuda; 16 clients, 32-byte prompts):"
  grep -E '^(== ServeBench|tokens_per_s_batch1=)' "$out/gpu-serve.log" 2>/dev/null || echo "(no serve run)"
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
  awk '/^== ServeBench / { m = $3 } /^tokens_per_s_batch1=/ {
      for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      r = v["tpot_p99_ms"] / v["tpot_p99_ms_batch1"]
      printf "  serve %s: continuous/max-batch 1 tokens/s %.2fx (goal >= 4: %s), TPOT p99 %.2fx max-batch 1 (goal <= 2: %s)\n",
        m, v["speedup"], (v["speedup"] >= 4 ? "met" : "MISSED"), r, (r <= 2 ? "met" : "MISSED"); f = 1 }
      END { if (!f) print "  serve: continuous >= 4x max-batch 1 tokens/s, TPOT p99 <= 2x: not measured" }' \
    "$out/gpu-serve.log" 2>/dev/null || true
  echo "===== END SUMMARY ====="
}

case "${1:---prepare}" in
  --prepare) prepare ;;
  --dry-run)
    prepare
    unpack
    echo "gpu-check: dry run: the bundle's launcher and benches here (no GPU: tests skip, benches say so)"
    GPU_CHECK_EXPECT_GPU=0 GPU_CHECK_PARTS=tests,bench,pipeline,decode OUT="$BUNDLE/out" run_checks || true
    grep -Eq '\[ *[1-9][0-9]* tests successful' "$BUNDLE/out/gpu-tests.log" || die "the bundled JUnit launcher ran no tests"
    grep -Eq '\[ *0 tests failed' "$BUNDLE/out/gpu-tests.log" || die "tests failed in the bundle (see above)"
    grep -q 'no GPU.*GPT hook .* loaded' "$BUNDLE/out/gpu-bench.log" || grep -q 'TFLOP' "$BUNDLE/out/gpu-bench.log" \
      || die "the bundled bench or its GPT hook did not load"
    grep -q 'pipeline bench: no GPU' "$BUNDLE/out/gpu-pipeline.log" || grep -q '^pipeline small' "$BUNDLE/out/gpu-pipeline.log" \
      || die "the bundled pipeline bench did not load"
    grep -q 'decode bench: no GPU' "$BUNDLE/out/gpu-decode.log" || grep -q '^decode small' "$BUNDLE/out/gpu-decode.log" \
      || die "the bundled decode bench did not load"
    grep -q '===== END SUMMARY' "$BUNDLE/out/summary.md" || die "the summary block was not printed"
    flags="$(cat "$RUN/jvm-flags")"
    echo "gpu-check: dry run: the pipeline bench from the bundle, on the CPU (tiny, 1 step: proves the engine runs there)"
    # shellcheck disable=SC2086
    "$RUN/jre/bin/java" $flags -cp "$(classpath)" io.troupe.actors.bench.CudaPipelineBench \
        --device=cpu --configs=tiny --steps=1 --warmup=0 --precision=fp32 | tee "$BUNDLE/out/cpu-pipeline.log" \
      || die "the pipeline bench failed on the CPU from the bundle"
    grep -q '^pipeline tiny 1stage_ms=' "$BUNDLE/out/cpu-pipeline.log" || die "the pipeline bench printed no result"
    echo "gpu-check: dry run: the decode bench from the bundle, on the CPU device (small, 3 steps: the same code path)"
    # shellcheck disable=SC2086
    "$RUN/jre/bin/java" $flags -cp "$(classpath)" io.troupe.models.bench.CudaDecodeBench \
        --device=cpu --configs=small --steps=3 --warmup=1 | tee "$BUNDLE/out/cpu-decode.log" \
      || die "the decode bench failed on the CPU from the bundle"
    grep -q '^decode small device=cpu .*batch_invariant=yes' "$BUNDLE/out/cpu-decode.log" \
      || die "the decode bench printed no result, or its logits were not batch-invariant"
    echo "gpu-check: dry run: the serve bench from the bundle, on the CPU device (Pekko HTTP server, 2 clients, 8 requests)"
    # shellcheck disable=SC2086
    "$RUN/jre/bin/java" $flags -cp "$(classpath)" io.troupe.actors.bench.ServeBench --device cpu --model tiny \
        --clients 2 --requests 8 --warmup 2 --settle-rounds 0 --max-tokens 4 --prompt-bytes 8 \
        --isolate-step-core false | tee "$BUNDLE/out/cpu-serve.log" || die "the serve bench failed on the CPU from the bundle"
    grep -q '^tokens_per_s_batch1=.* speedup=' "$BUNDLE/out/cpu-serve.log" || die "the serve bench printed no result"
    rm -rf "$BUNDLE/out" "$RUN"
    echo "gpu-check: dry run OK" ;;
  --rehearse)
    prepare
    bash "$ROOT/runtime/src/test/cuda-emu/build-emu.sh" "$ROOT/runtime/target/cuda-emu" || die "the CUDA emulator did not build"
    GPU_CHECK_EMULATOR="$ROOT/runtime/target/cuda-emu/libcuda.so.1" GPU_CHECK_SIZES=256 GPU_CHECK_GPT_CONFIGS=tiny \
      GPU_CHECK_PIPELINE=tiny GPU_CHECK_PIPELINE_ARGS="--steps=1 --warmup=0" \
      GPU_CHECK_DECODE=small GPU_CHECK_DECODE_ARGS="--steps=2 --warmup=1" GPU_CHECK_SERVE=tiny \
      GPU_CHECK_SERVE_ARGS="--clients 2 --requests 4 --warmup 1 --settle-rounds 0 --max-tokens 3 --prompt-bytes 8" \
      OUT="$BUNDLE/out" run_checks || die "the rehearsal on the CUDA emulator failed (logs in $BUNDLE/out)"
    grep -q '===== END SUMMARY' "$BUNDLE/out/summary.md" || die "the summary block was not printed"
    grep -q '^  serve tiny: ' "$BUNDLE/out/summary.md" || die "the serve bench gave no goal line"
    echo "gpu-check: rehearsal on the CUDA emulator OK (logs in $BUNDLE/out)" ;;
  --run) run_checks ;;
  *) die "unknown option '$1': expected --prepare, --dry-run, --rehearse or --run" ;;
esac
