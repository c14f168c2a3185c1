package io.troupe.models.bench;

import io.troupe.models.gpt.GptConfig;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

/**
 * PyTorch's CPU training step for the same GPT and recipe, measured in a child {@code python3} while the
 * step bench runs: the script {@code step_torch.py} (a resource beside this class) builds the model,
 * times {@code steps} steps after {@code warmup} and prints one {@code key=value} line, parsed into a
 * {@link Result}.
 *
 * <p>The interpreter: an explicit path (option {@code --python}, or the environment variable
 * {@code TROUPE_BENCH_PYTHON}); otherwise the first of {@code python3} on the PATH and
 * {@code /usr/bin/python3} that can {@code import torch}. The child inherits the environment
 * (so {@code OPENBLAS_CORETYPE} applies to PyTorch's OpenBLAS too) with {@code OMP_NUM_THREADS}
 * set to the thread count; when this JVM runs with {@code -XX:UseAVX=2} or lower, PyTorch's own
 * kernels are held to AVX2 as well ({@code ATEN_CPU_CAPABILITY=avx2}, {@code ONEDNN_MAX_CPU_ISA=AVX2}).
 */
public final class TorchBaseline {
    static final String SCRIPT = "step_torch.py";
    private static final long PROBE_TIMEOUT_S = 60;
    private static final long RUN_TIMEOUT_S = 600;

    private final String python;

    private TorchBaseline(String python) {
        this.python = python;
    }

    /**
     * The step of PyTorch {@code torch} version with {@code threads} threads and the BLAS library it
     * loaded: median and extremes of the wall time over the timed steps, and the median process CPU time.
     */
    record Result(String torch, int threads, String blas, double msPerStep, double minMs, double maxMs,
                  double cpuMsPerStep) {
        /**
         * Parses the script's line
         * {@code torch=.. threads=.. blas=.. ms_per_step=.. min=.. max=.. cpu_ms_per_step=..}.
         */
        static Result parse(String line) {
            Map<String, String> kv = new LinkedHashMap<>();
            for (String field : line.trim().split("\\s+")) {
                int eq = field.indexOf('=');
                if (eq > 0) {
                    kv.put(field.substring(0, eq), field.substring(eq + 1));
                }
            }
            for (String key : List.of("torch", "threads", "blas", "ms_per_step", "min", "max", "cpu_ms_per_step")) {
                if (!kv.containsKey(key)) {
                    throw new IllegalArgumentException("PyTorch baseline line lacks '" + key + "=': " + line);
                }
            }
            return new Result(kv.get("torch"), Integer.parseInt(kv.get("threads")), kv.get("blas"),
                Double.parseDouble(kv.get("ms_per_step")), Double.parseDouble(kv.get("min")),
                Double.parseDouble(kv.get("max")), Double.parseDouble(kv.get("cpu_ms_per_step")));
        }
    }

    /** The interpreter in use. */
    String python() {
        return python;
    }

    /**
     * The interpreter for {@code explicit} (a python path; null or empty: look for one) that can import
     * torch, or empty ({@code explicit} "none": always). For other benches' PyTorch references.
     */
    public static Optional<String> findPython(String explicit) {
        return find(explicit).map(TorchBaseline::python);
    }

    /**
     * The baseline for {@code explicit} (a python path; null or empty: look for one), or empty when no
     * interpreter there can import torch. {@code explicit} "none" turns the baseline off.
     */
    static Optional<TorchBaseline> find(String explicit) {
        if ("none".equals(explicit)) {
            return Optional.empty();
        }
        List<String> candidates = new ArrayList<>();
        if (explicit != null && !explicit.isEmpty()) {
            candidates.add(explicit);
        } else {
            candidates.add("python3");
            candidates.add("/usr/bin/python3");
        }
        for (String candidate : candidates) {
            if (canImportTorch(candidate)) {
                return Optional.of(new TorchBaseline(candidate));
            }
        }
        return Optional.empty();
    }

    private static boolean canImportTorch(String python) {
        try {
            Process p = new ProcessBuilder(python, "-c", "import torch").redirectErrorStream(true).start();
            p.getInputStream().transferTo(OutputStream.nullOutputStream());
            if (!p.waitFor(PROBE_TIMEOUT_S, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                return false;
            }
            return p.exitValue() == 0;
        } catch (IOException e) {
            return false;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    /** Whether this JVM was started with {@code -XX:UseAVX=N} for N <= 2. */
    static boolean jvmHeldToAvx2() {
        for (String arg : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
            if (arg.startsWith("-XX:UseAVX=")) {
                try {
                    return Integer.parseInt(arg.substring("-XX:UseAVX=".length())) <= 2;
                } catch (NumberFormatException e) {
                    return false;
                }
            }
        }
        return false;
    }

    /** Runs the script for {@code cfg}: {@code steps} timed steps after {@code warmup}. */
    Result run(GptConfig cfg, int batch, int threads, int steps, int warmup) {
        List<String> cmd = List.of(python, "-", Integer.toString(cfg.vocabSize()), Integer.toString(cfg.dModel()),
            Integer.toString(cfg.nLayer()), Integer.toString(cfg.nHead()), Integer.toString(cfg.seqLen()),
            Float.toString(cfg.lnEps()), Integer.toString(batch), Integer.toString(threads), Integer.toString(steps),
            Integer.toString(warmup));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.INHERIT);
        pb.environment().put("OMP_NUM_THREADS", Integer.toString(threads));
        if (jvmHeldToAvx2()) {
            pb.environment().put("ATEN_CPU_CAPABILITY", "avx2");
            pb.environment().put("ONEDNN_MAX_CPU_ISA", "AVX2");
            pb.environment().put("DNNL_MAX_CPU_ISA", "AVX2");
        }
        try (InputStream script = TorchBaseline.class.getResourceAsStream(SCRIPT)) {
            if (script == null) {
                throw new IllegalStateException("resource " + SCRIPT + " missing beside "
                    + TorchBaseline.class.getName());
            }
            return Result.parse(lastLine("PyTorch baseline (" + python + ")", pb, script, RUN_TIMEOUT_S));
        } catch (IOException e) {
            throw new IllegalStateException("PyTorch baseline (" + python + ") failed to run: " + e.getMessage(), e);
        }
    }

    /**
     * Runs {@code pb} (its standard error as the caller set it), feeding it {@code stdin} (null: nothing), and
     * returns the last line of its standard output; fails naming {@code what} when it cannot start, runs past
     * {@code timeoutS} seconds or exits other than 0 (with what it printed).
     */
    public static String lastLine(String what, ProcessBuilder pb, InputStream stdin, long timeoutS) {
        try {
            Process p = pb.start();
            try (OutputStream in = p.getOutputStream()) {
                if (stdin != null) {
                    stdin.transferTo(in);
                }
            }
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!p.waitFor(timeoutS, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new IllegalStateException(what + " still running after " + timeoutS + " s");
            }
            if (p.exitValue() != 0) {
                throw new IllegalStateException(what + " exited " + p.exitValue() + ": " + out.trim());
            }
            String[] lines = out.trim().split("\n");
            return lines[lines.length - 1];
        } catch (IOException e) {
            throw new IllegalStateException(what + " failed to run: " + e.getMessage(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while " + what + " ran", e);
        }
    }

    /** One line naming the baseline: version, threads, BLAS library, interpreter. */
    String describe(Result r) {
        return String.format(Locale.ROOT, "PyTorch %s (%s), %d thread(s), BLAS %s%s", r.torch(), python, r.threads(),
            r.blas(),
            jvmHeldToAvx2() ? ", held to AVX2 (ATEN_CPU_CAPABILITY=avx2)" : "");
    }
}
