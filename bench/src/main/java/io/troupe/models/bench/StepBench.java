package io.troupe.models.bench;

import io.troupe.bench.Median;
import io.troupe.models.data.Corpora;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.train.TrainConfig;
import io.troupe.models.train.Trainer;
import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.tensor.Tensor;
import java.util.Arrays;
import java.util.Locale;

/**
 * {@code scripts/bench step --model small|big --threads 1|2 [--steps N] [--warmup N]}: median ms per
 * full training step (forward, backward, AdamW) after warm-up, against PyTorch 1.13's CPU step
 * time measured on this machine for the same model and threads, plus the gemm GFLOP/s of the
 * model's largest matrix product measured in the same run. Last line:
 * {@code model=<name> threads=<n> ms_per_step=<median> tokens_per_s=<median>}.
 */
public final class StepBench {
    private StepBench() {
    }

    /** PyTorch 1.13 CPU reference step times (ms) measured on this machine: {1 thread, 2 threads}. */
    static double[] torchReferenceMs(String model) {
        return switch (model) {
            case "small" -> new double[] {69.9, 41.9};
            case "big" -> new double[] {687, 410};
            default -> null;
        };
    }

    public static void main(String[] args) {
        String model = "small";
        int threads = 1;
        int steps = 20;
        int warmup = 5;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--model" -> model = args[++i];
                case "--threads" -> threads = Integer.parseInt(args[++i]);
                case "--steps" -> steps = Integer.parseInt(args[++i]);
                case "--warmup" -> warmup = Integer.parseInt(args[++i]);
                default -> throw new IllegalArgumentException("unknown option '" + args[i]
                    + "': usage: bench step --model small|big --threads N [--steps N] [--warmup N]");
            }
        }
        GptConfig cfg = GptConfig.preset(model);
        TrainConfig tc = TrainConfig.defaults(cfg, 1_000_000);
        try (CpuDevice dev = new CpuDevice(threads); Trainer trainer = new Trainer(tc, dev, Corpora.builtIn())) {
            System.out.printf(Locale.ROOT, "bench step: %s GPT (%,d params), batch %d x seq %d, %s, OPENBLAS_CORETYPE=%s%n", model,
                trainer.model().layout().numel(), tc.batchSize(), cfg.seqLen(), dev.name(),
                System.getenv().getOrDefault("OPENBLAS_CORETYPE", "(auto)"));
            for (int i = 0; i < warmup; i++) {
                trainer.trainStep();
            }
            double[] ms = new double[steps];
            double[] tps = new double[steps];
            for (int i = 0; i < steps; i++) {
                var m = trainer.trainStep();
                ms[i] = m.stepMs();
                tps[i] = m.tokensPerSec();
            }
            double gflops = gemmGflops(dev, tc.batchSize() * cfg.seqLen(), 4 * cfg.dModel(), cfg.dModel());
            double medMs = Median.of(ms);
            double medTps = Median.of(tps);
            double flopsPerStep = 6.0 * trainer.model().layout().numel() * tc.batchSize() * cfg.seqLen();
            System.out.printf(Locale.ROOT, "gemm (%d x %d x %d, fc layer shape): %.1f GFLOP/s on %d thread(s)%n",
                tc.batchSize() * cfg.seqLen(), 4 * cfg.dModel(), cfg.dModel(), gflops, threads);
            System.out.printf(Locale.ROOT, "step: median %.2f ms (min %.2f, max %.2f) over %d steps; %.1f model GFLOP/s (6*N*tokens)%n",
                medMs, Arrays.stream(ms).min().orElse(0), Arrays.stream(ms).max().orElse(0), steps, flopsPerStep / medMs / 1e6);
            double[] ref = torchReferenceMs(model);
            if (ref != null && threads >= 1 && threads <= 2) {
                double r = ref[threads - 1];
                System.out.printf(Locale.ROOT, "PyTorch 1.13 reference on this machine: %.1f ms/step -> ratio troupe/torch = %.3f (goal <= 1.0)%n",
                    r, medMs / r);
            }
            System.out.printf(Locale.ROOT, "model=%s threads=%d ms_per_step=%.2f tokens_per_s=%.0f%n", model, threads, medMs, medTps);
        }
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
