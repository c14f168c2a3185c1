package io.troupe.models.bench;

import com.sun.management.OperatingSystemMXBean;
import io.troupe.actors.cli.Options;
import io.troupe.bench.BenchOptions;
import io.troupe.bench.BenchRecipe;
import io.troupe.bench.Median;
import io.troupe.models.data.Corpora;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.train.TrainConfig;
import io.troupe.models.train.Trainer;
import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.tensor.Tensor;
import java.lang.management.CompilationMXBean;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.Set;

/**
 * {@code scripts/bench step --model small|big --threads N [--steps N] [--warmup N] [--max-warmup N] [--rounds N]
 * [--python PATH|none] [--ab-bias-fold] [--ab-vector-kernels]}: median ms per full training step (forward, backward,
 * global-norm clipping, AdamW) after warm-up, against
 * PyTorch's CPU step for the same GPT and recipe measured in the same run ({@link TorchBaseline}) when a
 * {@code python3} with {@code torch} is found, plus the gemm GFLOP/s of the model's fc-layer product.
 *
 * <p>The run alternates {@code rounds} rounds of Troupe's {@code steps} steps and PyTorch's (a fresh
 * child process each round, with its own warm-up), so load that comes and goes on the machine falls
 * on both. Warm-up: at least {@code warmup} steps, then until the JIT compiler has settled
 * ({@link #warmUp}; at most {@code max-warmup} steps in all), so the timed steps do not pay for
 * compilation (the compiler threads' CPU time counts in the process CPU time); PyTorch's warm-up
 * takes as many steps; the ratio is the median of Troupe's round medians over the median of PyTorch's. Last line:
 * {@code model=<name> threads=<n> ms_per_step=<median> tokens_per_s=<median> torch_ms_per_step=<median|none>
 * ratio=<troupe/torch|none>}.
 *
 * <p>{@code --ab-bias-fold} instead compares the linear forward's bias folded into the gemm
 * ({@link CpuDevice#foldBiasIntoGemm}) with gemm-then-add in the same run: each round runs {@code steps}
 * steps of each, in alternating order, and prints the medians, stepping-thread CPU time per step and ratios.
 * {@code --ab-vector-kernels} compares the same way the Vector API kernels (new: the attention and the
 * cross-entropy rows) with the attention on OpenBLAS gemms and the scalar cross-entropy rows (old,
 * {@link CpuDevice#useVectorKernels}); it needs the Vector API module, which {@code scripts/bench step} adds.
 */
public final class StepBench {
    private static final String USAGE =
        "usage: bench step --model small|big --threads N [--steps N] [--warmup N] [--max-warmup N] [--rounds N]"
        + " [--python PATH|none] [--ab-bias-fold] [--ab-vector-kernels]";
    /** Warm-up is judged over windows of this many steps. */
    static final int QUIET_STEPS = 20;
    /** Warm-up ends at a window where the JVM's own threads used under this share of the stepping thread's CPU. */
    static final double QUIET_SHARE = 0.01;

    private StepBench() {
    }

    public static void main(String[] args) {
        Options o = BenchOptions.parse(args, "step", USAGE,
            Set.of("model", "threads", "steps", "warmup", "max-warmup", "rounds", "python"),
            Set.of("ab-bias-fold", "ab-vector-kernels"));
        String model = o.get("model", "small");
        int threads = o.getInt("threads", 1);
        int steps = o.getInt("steps", 20);
        int warmup = o.getInt("warmup", 5);
        int maxWarmup = o.getInt("max-warmup", 200);
        int rounds = o.getInt("rounds", 3);
        String python = o.get("python", System.getenv("TROUPE_BENCH_PYTHON"));
        if (threads < 1 || steps < 1 || warmup < 0 || maxWarmup < warmup || rounds < 1) {
            throw new IllegalArgumentException("need threads >= 1, steps >= 1, warmup >= 0, max-warmup >= warmup,"
                + " rounds >= 1: threads=" + threads + ", steps=" + steps + ", warmup=" + warmup + ", max-warmup="
                + maxWarmup + ", rounds=" + rounds);
        }
        GptConfig cfg = GptConfig.preset(model);
        TrainConfig tc = BenchRecipe.of(cfg, 1_000_000);
        Optional<TorchBaseline> torch = TorchBaseline.find(python);
        try (CpuDevice dev = new CpuDevice(threads); Trainer trainer = new Trainer(tc, dev, Corpora.builtIn())) {
            System.out.printf(Locale.ROOT,
                "bench step: %s GPT (%,d params), batch %d x seq %d, %s, OPENBLAS_CORETYPE=%s%s%n", model,
                trainer.model().layout().numel(), tc.batchSize(), cfg.seqLen(), dev.name(),
                System.getenv().getOrDefault("OPENBLAS_CORETYPE", "(auto)"),
                TorchBaseline.jvmHeldToAvx2() ? ", JVM held to AVX2 (-XX:UseAVX=2)" : "");
            if (o.has("ab-bias-fold")) {
                warmUp(trainer, threads, warmup, maxWarmup);
                abBiasFold(trainer, steps, rounds);
                return;
            }
            if (o.has("ab-vector-kernels")) {
                if (!CpuDevice.usesVectorKernels()) {
                    throw new IllegalStateException("--ab-vector-kernels needs the Vector API: run the JVM with"
                        + " --add-modules jdk.incubator.vector (scripts/bench step adds it)");
                }
                // both variants warmed up: each compiles its own kernels
                CpuDevice.useVectorKernels(false);
                warmUp(trainer, threads, warmup, maxWarmup);
                CpuDevice.useVectorKernels(true);
                warmUp(trainer, threads, warmup, maxWarmup);
                abCompare(trainer, steps, rounds, CpuDevice::useVectorKernels, "OpenBLAS attention, scalar CE",
                    "vector kernels", "ab-vector-kernels: vector/old");
                return;
            }
            System.out.println(torch.map(t -> "baseline: PyTorch via " + t.python() + ", measured in this run")
                .orElse("baseline: none (no python3 with torch found; set TROUPE_BENCH_PYTHON or --python PATH)"));
            int warmed = warmUp(trainer, threads, warmup, maxWarmup);
            long jitMs0 = jitMillis();
            List<Double> all = new ArrayList<>();
            List<Double> tps = new ArrayList<>();
            double[] troupeRounds = new double[rounds];
            double[] torchRounds = new double[rounds];
            double[] troupeCpuRounds = new double[rounds];
            double[] mainCpuRounds = new double[rounds];
            ThreadMXBean threadBean = ManagementFactory.getThreadMXBean();
            double[] torchCpuRounds = new double[rounds];
            TorchBaseline.Result last = null;
            for (int r = 0; r < rounds; r++) {
                double[] ms = new double[steps];
                long cpu0 = processCpuNanos();
                long mainCpu0 = threadBean.getCurrentThreadCpuTime();
                for (int i = 0; i < steps; i++) {
                    var m = trainer.trainStep();
                    ms[i] = m.stepMs();
                    all.add(m.stepMs());
                    tps.add(m.tokensPerSec());
                }
                // The process CPU clock may tick in 10 ms: the round's total over its steps, not per step.
                troupeCpuRounds[r] = (processCpuNanos() - cpu0) / 1e6 / steps;
                mainCpuRounds[r] = (threadBean.getCurrentThreadCpuTime() - mainCpu0) / 1e6 / steps;
                troupeRounds[r] = Median.of(ms);
                String torchPart = "";
                if (torch.isPresent()) {
                    last = torch.get().run(cfg, tc.batchSize(), threads, steps, warmed);
                    torchRounds[r] = last.msPerStep();
                    torchCpuRounds[r] = last.cpuMsPerStep();
                    torchPart = String.format(Locale.ROOT, ", PyTorch median %.2f ms (min %.2f, max %.2f) -> %.3f",
                        last.msPerStep(), last.minMs(), last.maxMs(), troupeRounds[r] / last.msPerStep());
                }
                System.out.printf(Locale.ROOT, "round %d: Troupe median %.2f ms (min %.2f, max %.2f)%s%n", r + 1,
                    troupeRounds[r],
                    Arrays.stream(ms).min().orElse(0), Arrays.stream(ms).max().orElse(0), torchPart);
            }
            System.out.printf(Locale.ROOT, "JIT compilation finished during the timed rounds: %d ms%n",
                jitMillis() - jitMs0);
            double gflops = gemmGflops(dev, tc.batchSize() * cfg.seqLen(), 4 * cfg.dModel(), cfg.dModel());
            double medMs = Median.of(troupeRounds);
            double medTps = Median.of(tps);
            double flopsPerStep = 6.0 * trainer.model().layout().numel() * tc.batchSize() * cfg.seqLen();
            System.out.printf(Locale.ROOT, "gemm (%d x %d x %d, fc layer shape): %.1f GFLOP/s on %d thread(s)%n",
                tc.batchSize() * cfg.seqLen(), 4 * cfg.dModel(), cfg.dModel(), gflops, threads);
            System.out.printf(Locale.ROOT,
                "step: median of round medians %.2f ms (all steps: min %.2f, max %.2f) over %d x %d steps;"
                + " %.1f model GFLOP/s (6*N*tokens)%n", medMs, all.stream().mapToDouble(d -> d).min().orElse(0),
                all.stream().mapToDouble(d -> d).max().orElse(0), rounds, steps, flopsPerStep / medMs / 1e6);
            double troupeCpu = Median.of(troupeCpuRounds);
            System.out.printf(Locale.ROOT, "Troupe process CPU time per step, mean of a round, median of rounds:"
                + " %.2f ms (the stepping thread %.2f ms, the rest JIT compiler, GC and other JVM threads)%n",
                troupeCpu, Median.of(mainCpuRounds));
            String torchMs = "none";
            String ratio = "none";
            if (last != null) {
                double torchMed = Median.of(torchRounds);
                System.out.printf(Locale.ROOT,
                    "baseline: %s: median of round medians %.2f ms/step -> ratio troupe/torch = %.3f"
                    + " (goal <= 0.90)%n", torch.get().describe(last), torchMed, medMs / torchMed);
                double torchCpu = Median.of(torchCpuRounds);
                System.out.printf(Locale.ROOT, "process CPU time per step, mean of a round, median of rounds"
                    + " (less sensitive to other load on the machine): Troupe %.2f ms, PyTorch %.2f ms -> ratio %.3f%n",
                    troupeCpu, torchCpu, troupeCpu / torchCpu);
                torchMs = String.format(Locale.ROOT, "%.2f", torchMed);
                ratio = String.format(Locale.ROOT, "%.3f", medMs / torchMed);
            }
            System.out.printf(Locale.ROOT,
                "model=%s threads=%d ms_per_step=%.2f tokens_per_s=%.0f torch_ms_per_step=%s ratio=%s%n",
                model, threads, medMs, medTps, torchMs, ratio);
        }
    }

    /**
     * Same-run A/B of the bias folded into the linear forward's gemm (new) against gemm-then-add (old):
     * per round both variants run {@code steps} steps, old first in odd rounds, new first in even ones.
     * Prints each round's wall medians and stepping-thread CPU per step, and the medians of the ratios.
     */
    static void abBiasFold(Trainer trainer, int steps, int rounds) {
        abCompare(trainer, steps, rounds, CpuDevice::foldBiasIntoGemm, "gemm+biasAdd", "folded",
            "ab-bias-fold: folded/unfolded");
    }

    /**
     * Same-run A/B of a switch ({@code variant.accept(false)} the old form, {@code true} the new): per round both
     * run {@code steps} steps, old first in odd rounds, new first in even ones. Prints each round's wall medians
     * and stepping-thread CPU per step, and the medians of the ratios; leaves the switch on.
     */
    static void abCompare(Trainer trainer, int steps, int rounds, java.util.function.Consumer<Boolean> variant,
                          String oldName, String newName, String summary) {
        ThreadMXBean threadBean = ManagementFactory.getThreadMXBean();
        double[] wallRatio = new double[rounds];
        double[] cpuRatio = new double[rounds];
        for (int r = 0; r < rounds; r++) {
            double[][] wall = new double[2][];
            double[] cpu = new double[2];
            for (int j = 0; j < 2; j++) {
                int v = (r % 2 == 0) ? j : 1 - j;          // 0 = old, 1 = new
                variant.accept(v == 1);
                double[] ms = new double[steps];
                long cpu0 = threadBean.getCurrentThreadCpuTime();
                for (int i = 0; i < steps; i++) {
                    ms[i] = trainer.trainStep().stepMs();
                }
                cpu[v] = (threadBean.getCurrentThreadCpuTime() - cpu0) / 1e6 / steps;
                wall[v] = ms;
            }
            double oldMs = Median.of(wall[0]);
            double newMs = Median.of(wall[1]);
            wallRatio[r] = newMs / oldMs;
            cpuRatio[r] = cpu[1] / cpu[0];
            System.out.printf(Locale.ROOT, "round %d: %s %.2f ms (cpu %.2f), %s %.2f ms (cpu %.2f)"
                + " -> wall %.4f, cpu %.4f%n", r + 1, oldName, oldMs, cpu[0], newName, newMs, cpu[1], wallRatio[r],
                cpuRatio[r]);
        }
        variant.accept(true);
        System.out.printf(Locale.ROOT, "%s median wall ratio %.4f, median CPU ratio %.4f over %d rounds of %d steps%n",
            summary, Median.of(wallRatio), Median.of(cpuRatio), rounds, steps);
    }

    /**
     * Runs at least {@code min} steps, then windows of {@link #QUIET_STEPS} steps until one where the
     * JVM's own work (the CPU time of the process beyond that of the stepping thread: JIT compiler, GC)
     * stayed under {@link #QUIET_SHARE} of the stepping thread's, at most {@code max} steps in all.
     * With more than one thread the device's workers step too, so there the window must instead see no
     * finished JIT compilation. Prints and returns how many steps it ran.
     */
    static int warmUp(Trainer trainer, int threads, int min, int max) {
        ThreadMXBean threadBean = ManagementFactory.getThreadMXBean();
        int n = 0;
        for (; n < min; n++) {
            trainer.trainStep();
        }
        boolean settled = false;
        double share = Double.NaN;
        while (!settled && n + QUIET_STEPS <= max) {
            long process0 = processCpuNanos();
            long main0 = threadBean.getCurrentThreadCpuTime();
            long jit0 = jitMillis();
            for (int i = 0; i < QUIET_STEPS; i++) {
                trainer.trainStep();
            }
            n += QUIET_STEPS;
            long main = threadBean.getCurrentThreadCpuTime() - main0;
            share = (double) (processCpuNanos() - process0 - main) / Math.max(1, main);
            settled = threads == 1 ? share < QUIET_SHARE : jitMillis() == jit0;
        }
        String how = threads == 1
            ? String.format(Locale.ROOT, "then until the JIT compiler and GC used under %.0f%% of the stepping"
                + " thread's CPU time over %d steps (last window: %.1f%%)", 100 * QUIET_SHARE, QUIET_STEPS,
                100 * share)
            : "then until " + QUIET_STEPS + " steps passed without a finished JIT compilation";
        System.out.printf(Locale.ROOT, "warm-up: %d steps (at least %d, %s%s; PyTorch warms up as many)%n", n, min,
            how, settled ? "" : "; NOT settled within --max-warmup " + max);
        return n;
    }

    /** Total time the JIT spent compiling so far, in ms (0 where the JVM does not say). */
    private static long jitMillis() {
        CompilationMXBean jit = ManagementFactory.getCompilationMXBean();
        return jit != null && jit.isCompilationTimeMonitoringSupported() ? jit.getTotalCompilationTime() : 0;
    }

    /** CPU time of this process so far (all its threads), in ns; 0 where the JVM cannot say. */
    private static long processCpuNanos() {
        if (ManagementFactory.getOperatingSystemMXBean() instanceof OperatingSystemMXBean os) {
            return Math.max(0, os.getProcessCpuTime());
        }
        return 0;
    }

    /** GFLOP/s of C = A @ B^T for (m, k) x (n, k), the shape of a Linear forward. */
    static double gemmGflops(CpuDevice dev, int m, int n, int k) {
        try (Tensor a = dev.allocate(m, k); Tensor b = dev.allocate(n, k); Tensor c = dev.allocate(m, n)) {
            dev.fill(a, 0.5f);
            dev.fill(b, 0.25f);
            double[] t = new double[15];
            for (int i = -5; i < t.length; i++) {
                long t0 = System.nanoTime();
                dev.matmul(false, true, m, n, k, 1f, a, b, 0f, c);
                if (i >= 0) {
                    t[i] = (System.nanoTime() - t0) / 1e9;
                }
            }
            return 2.0 * m * n * k / Median.of(t) / 1e9;
        }
    }
}
