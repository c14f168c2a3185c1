# Shared by scripts/troupe, scripts/bench and the launch scripts. Source it; do not run it.
# The JVM flags Agrona 2.x and the Aeron media driver need: the same list as the parent POM's
# troupe.jvm.flags property (Surefire's argLine). Keep the two in step.
TROUPE_JVM_FLAGS="--add-exports java.base/jdk.internal.misc=ALL-UNNAMED --add-opens java.base/sun.nio.ch=ALL-UNNAMED --add-opens java.base/java.nio=ALL-UNNAMED --add-opens java.base/java.lang=ALL-UNNAMED"
# The Vector API (an incubator module in Java 17): the serving kernels and the CPU attention's kernel use it
# where the JVM runs with it (without it: the plain kernels, OpenBLAS gemms).
TROUPE_VECTOR_API_FLAGS="--add-modules jdk.incubator.vector"

# OpenBLAS kernel for Troupe's bundled OpenBLAS (0.3.31): on CPUs with AVX-512 its SkylakeX
# kernels run gemm about 2x faster than the Haswell ones a machine-wide OPENBLAS_CORETYPE may ask
# for (that variable exists for older OpenBLAS builds). Troupe's JVMs only; set
# TROUPE_OPENBLAS_CORETYPE to choose another (empty: keep the environment's choice).
if [ -z "${TROUPE_OPENBLAS_CORETYPE+x}" ]; then
  if grep -qw avx512bw /proc/cpuinfo 2>/dev/null && grep -qw avx512vl /proc/cpuinfo 2>/dev/null; then
    TROUPE_OPENBLAS_CORETYPE=SkylakeX
  else
    TROUPE_OPENBLAS_CORETYPE=""
  fi
fi
if [ -n "$TROUPE_OPENBLAS_CORETYPE" ]; then
  export OPENBLAS_CORETYPE="$TROUPE_OPENBLAS_CORETYPE"
fi

TROUPE_HOME="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TROUPE_JAR="$TROUPE_HOME/actors/target/troupe-actors-0.1.0-SNAPSHOT.jar"
TROUPE_BENCH_JAR="$TROUPE_HOME/bench/target/troupe-bench-0.1.0-SNAPSHOT.jar"

# Builds the jars on first use, or when any source, POM or config is newer than the jar it goes into
# (the benchmarks' jar is built by the same reactor, so it is checked against every module too).
troupe_ensure_built() {
  local stale="" jar
  for jar in "$TROUPE_JAR" "$TROUPE_BENCH_JAR"; do
    if [ ! -f "$jar" ]; then
      stale=yes
    else
      stale=$(cd "$TROUPE_HOME" && find pom.xml runtime collectives models actors bench cluster-config -newer "$jar" \
        \( -name '*.java' -o -name 'pom.xml' -o -name '*.conf' -o -name '*.cu' -o -name '*.py' \) -not -path '*/target/*' -not -path '*/src/test/*' -print -quit 2>/dev/null)
    fi
    if [ -n "$stale" ]; then break; fi
  done
  if [ ! -d "$TROUPE_HOME/actors/target/lib" ] || [ ! -d "$TROUPE_HOME/bench/target/lib" ]; then
    stale=yes
  fi
  if [ -n "$stale" ]; then
    # the runtime, collectives, models and actors jars and the benchmarks' jar with their libs; the
    # distribution image (dist/) is built by a full `mvn package` only. TROUPE_MVN_FLAGS adds Maven
    # flags (-o on a machine without the network, its dependencies already in ~/.m2).
    echo "troupe: building (mvn package -pl bench -am, tests skipped)..." >&2
    # shellcheck disable=SC2086
    (cd "$TROUPE_HOME" && mvn -q -B ${TROUPE_MVN_FLAGS:-} -DskipTests package -pl bench -am) >&2 \
      || { echo "troupe: build failed" >&2; exit 1; }
    # Maven leaves a jar whose module did not change as it was (its old time): without this, a source of another
    # module newer than that jar would rebuild on every call
    touch -c "$TROUPE_JAR" "$TROUPE_BENCH_JAR"
  fi
}

troupe_classpath() {
  echo "$TROUPE_JAR:$TROUPE_HOME/actors/target/lib/*"
}

# The benchmarks' classpath: their jar and its lib (the four Troupe jars and every dependency).
troupe_bench_classpath() {
  echo "$TROUPE_BENCH_JAR:$TROUPE_HOME/bench/target/lib/*"
}

troupe_java() {
  # shellcheck disable=SC2086
  exec java ${TROUPE_JAVA_OPTS:-} $TROUPE_JVM_FLAGS -cp "$(troupe_classpath)" "$@"
}

troupe_bench_java() {
  # shellcheck disable=SC2086
  exec java ${TROUPE_JAVA_OPTS:-} $TROUPE_JVM_FLAGS -cp "$(troupe_bench_classpath)" "$@"
}

# This machine's memory in KiB: its cgroup's limit when it has one (a container), else MemTotal.
troupe_memory_kib() {
  local total limit=""
  total=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo 2>/dev/null) || true
  [ -n "$total" ] || return 1
  if [ -r /sys/fs/cgroup/memory.max ]; then
    limit=$(cat /sys/fs/cgroup/memory.max)
  elif [ -r /sys/fs/cgroup/memory/memory.limit_in_bytes ]; then
    limit=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)
  fi
  if [[ "$limit" =~ ^[0-9]+$ ]] && [ $(( limit / 1024 )) -lt "$total" ]; then
    echo $(( limit / 1024 ))
  else
    echo "$total"
  fi
}

# troupe_node_threads NODES: threads per worker for one of NODES single-worker node processes sharing this
# machine: its share of the cores, at least 1 (launch-local.sh, and scripts/chaos's namespace nodes, which must
# match it: a gemm's bits can depend on its thread count)
troupe_node_threads() {
  local threads=$(( $(nproc) / ${1:-1} ))
  [ "$threads" -ge 1 ] || threads=1
  echo "$threads"
}

# JVM memory flags of a node process when NODES node processes share this machine (docs/deploy.md,
# "Memory of a node"): of its share, a heap of 1/4 (-Xmx) and a direct-memory limit of 3/8
# (-XX:MaxDirectMemorySize: the in-memory snapshot slots, two of each rank's snapshot and two of each
# buddy copy); the other 3/8 stay for the native tensors (parameters, gradients, moments, activations,
# receive budgets), the media driver's /dev/shm and the JVM itself. A heap or direct-memory flag already
# in TROUPE_JAVA_OPTS is kept as given (then this prints nothing for it).
troupe_node_memory_opts() {
  local nodes="${1:-1}" total share opts=""
  total=$(troupe_memory_kib) || return 0
  [[ "$nodes" =~ ^[1-9][0-9]*$ ]] || nodes=1
  share=$(( total / nodes ))
  case " ${TROUPE_JAVA_OPTS:-} " in
    *" -Xmx"*|*"MaxRAMPercentage"*|*"-XX:MaxRAM="*) ;;
    *) opts="-Xmx$(( share / 4 ))k" ;;
  esac
  case " ${TROUPE_JAVA_OPTS:-} " in
    *"MaxDirectMemorySize"*) ;;
    *) opts="$opts -XX:MaxDirectMemorySize=$(( share * 3 / 8 ))k" ;;
  esac
  echo "$opts"
}

# Processes a launch script started; troupe_stop_started stops them (TERM, then KILL after 10 s) and returns
# once each has ended.
TROUPE_STARTED_PIDS=()
troupe_stop_started() {
  trap - EXIT INT TERM
  local pid
  for pid in "${TROUPE_STARTED_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${TROUPE_STARTED_PIDS[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true # reaped: gone when this returns (a KILLed process ends a moment later)
  done
}
