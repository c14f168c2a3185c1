package io.troupe.actors.bench;

import io.troupe.actors.cli.Options;
import io.troupe.actors.engine.LocalPipelineEngine;
import io.troupe.actors.engine.PipelineJobSpec;
import io.troupe.bench.BenchOptions;
import io.troupe.bench.BenchRecipe;
import io.troupe.bench.Median;
import io.troupe.models.data.Corpora;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.parallel.Layout;
import io.troupe.models.parallel.StagePartition;
import io.troupe.models.train.TrainConfig;
import io.troupe.runtime.cuda.CudaDevice;
import io.troupe.runtime.cuda.CudaSupport;
import io.troupe.runtime.cuda.GemmPrecision;
import io.troupe.runtime.device.Device;
import io.troupe.runtime.device.DeviceKind;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * Single-stage against 2-stage pipeline training on one GPU, in one process (run by
 * {@code scripts/gpu-check.sh --run}): for each config, the step engine with layout 1x1 (one stage
 * worker holding every block) and 1x2 (two stage workers, each its own {@link CudaDevice} on the same
 * card, activations and gradients staged through pinned host memory on copy streams), the same global
 * batch, micro-batches and 1F1B schedule. Prints the median ms/step of both, their ratio (2-stage /
 * 1-stage), and the largest relative loss difference between the two runs (they train the same model
 * on the same data, so it must be small: a mismatch is reported and the exit code is 1). On a GPU it
 * also checks the whole GPU path against the CPU backend (the small config, 2 stages on the GPU with
 * FP32 GEMMs against 1 stage on the CPU, 3 steps, same tolerance).
 *
 * <p>Options: {@code --configs=small,big} {@code --steps=5} {@code --warmup=2} {@code --microbatches=4}
 * {@code --precision=bf16|tf32|fp32} (GEMMs on the GPU) {@code --device=cuda|cpu} (cpu: the dry run's
 * check that the bench loads and runs). Last lines: {@code pipeline <config> 1stage_ms=<x> 2stage_ms=<x> ratio=<x>}.
 */
public final class CudaPipelineBench {
    private static final double LOSS_REL_TOLERANCE = 1e-3;

    private CudaPipelineBench() {
    }

    public static void main(String[] args) {
        List<String> configs = List.of("small", "big");
        int steps = 5;
        int warmup = 2;
        int microbatches = 4;
        GemmPrecision precision = GemmPrecision.BF16;
        DeviceKind device = DeviceKind.CUDA;
        Options o = BenchOptions.parse(args, "cuda-pipeline",
            "usage: CudaPipelineBench [--configs=small,big] [--steps=N] [--warmup=N] [--microbatches=N]"
                + " [--precision=bf16|fp32] [--device=cuda|cpu]",
            Set.of("configs", "steps", "warmup", "microbatches", "precision", "device"), Set.of());
        if (o.has("configs")) {
            configs = Arrays.asList(o.get("configs").split(","));
        }
        steps = o.getInt("steps", steps);
        warmup = o.getInt("warmup", warmup);
        microbatches = o.getInt("microbatches", microbatches);
        if (o.has("precision")) {
            precision = GemmPrecision.valueOf(o.get("precision").toUpperCase(Locale.ROOT));
        }
        if (o.has("device")) {
            device = DeviceKind.parse(o.get("device"));
        }
        if (steps < 1) {
            throw new IllegalArgumentException("steps must be >= 1: steps=" + steps);
        }
        if (device == DeviceKind.CUDA && !CudaSupport.isAvailable()) {
            System.out.println("pipeline bench: no GPU (" + CudaSupport.availability().reason() + "): not run");
            System.exit(2);
        }
        System.out.printf(Locale.ROOT,
            "%n1-stage vs 2-stage pipeline on one device (%s, %s GEMMs, up to %d micro-batches, 1F1B, "
            + "median of %d steps after %d warm-up)%n", device, precision, microbatches, steps, warmup);
        System.out.println("| model | batch x seq | micro-batches | 1-stage ms/step | 2-stage ms/step | ratio 2/1 "
            + "| max loss rel diff |");
        System.out.println("|---|---|---|---|---|---|---|");
        // A throw-away round of both layouts first, so the first measured run does not pay for JIT compilation.
        TrainConfig first = BenchRecipe.of(GptConfig.preset(configs.get(0).trim()), 2 * warmup + 2);
        run(first, "1x1", 1, device, precision, warmup + 1, 1);
        run(first, "1x2", 1, device, precision, warmup + 1, 1);
        List<String> summary = new ArrayList<>();
        boolean mismatch = false;
        for (String name : configs) {
            GptConfig cfg = GptConfig.preset(name.trim());
            TrainConfig tc = BenchRecipe.of(cfg, warmup + steps);
            int m = microbatches;
            while (tc.batchSize() % m != 0) {
                m--;   // the largest count up to the asked one that divides the batch
            }
            Run one = run(tc, "1x1", m, device, precision, warmup, steps);
            Run two = run(tc, "1x2", m, device, precision, warmup, steps);
            double diff = 0;
            for (int i = 0; i < one.losses.length; i++) {
                diff = Math.max(diff, Math.abs(one.losses[i] - two.losses[i]) / Math.max(1e-12,
                    Math.abs(one.losses[i])));
            }
            boolean bad = !(diff <= LOSS_REL_TOLERANCE);
            mismatch |= bad;
            System.out.printf(Locale.ROOT, "| %s | %d x %d | %d | %.2f | %.2f | %.2f | %.2g%s |%n", cfg.name(),
                tc.batchSize(), cfg.seqLen(), m, one.medianMs, two.medianMs, two.medianMs / one.medianMs, diff, bad
                    ? " MISMATCH" : "");
            summary.add(String.format(Locale.ROOT,
                "pipeline %s 1stage_ms=%.2f 2stage_ms=%.2f ratio=%.2f loss_rel_diff=%.2g",
                cfg.name(), one.medianMs, two.medianMs, two.medianMs / one.medianMs, diff));
        }
        if (device != DeviceKind.CPU) {
            mismatch |= checkAgainstCpu(summary);
        }
        summary.forEach(System.out::println);
        if (mismatch) {
            System.out.println("pipeline bench: the 2-stage run's losses differ from the 1-stage run's by more than "
                + LOSS_REL_TOLERANCE + " (relative)");
            System.exit(1);
        }
    }

    private record Run(double medianMs, double[] losses) {
    }

    /**
     * The whole GPU path against the CPU backend: the small config for a few steps, 2 stages on the GPU
     * with FP32 GEMMs against 1 stage on the CPU; the losses must agree to 1e-3 (relative).
     */
    private static boolean checkAgainstCpu(List<String> summary) {
        TrainConfig tc = BenchRecipe.of(GptConfig.preset("small"), 3);
        Run cpu = run(tc, "1x1", 4, DeviceKind.CPU, GemmPrecision.FP32, 0, 3);
        Run gpu = run(tc, "1x2", 4, DeviceKind.CUDA, GemmPrecision.FP32, 0, 3);
        double diff = 0;
        for (int i = 0; i < cpu.losses.length; i++) {
            diff = Math.max(diff, Math.abs(cpu.losses[i] - gpu.losses[i]) / Math.abs(cpu.losses[i]));
        }
        boolean bad = !(diff <= LOSS_REL_TOLERANCE);
        summary.add(String.format(Locale.ROOT,
            "pipeline check: small, 3 steps, GPU 1x2 FP32 vs CPU 1x1: losses %s vs %s, "
            + "max rel diff %.2g%s", Arrays.toString(gpu.losses), Arrays.toString(cpu.losses), diff, bad ? " MISMATCH"
                : " ok"));
        return bad;
    }

    private static Run run(TrainConfig tc, String layout, int microbatches, DeviceKind device, GemmPrecision precision,
                           int warmup, int steps) {
        Layout l = Layout.parse(layout, 1);
        PipelineJobSpec spec = new PipelineJobSpec(tc, l, "1f1b", microbatches, StagePartition.balanced(tc.model(),
            l.modelStages()), 1, 600_000, device, "");
        double[] losses = new double[warmup + steps];
        double[] ms = new double[steps];
        try (LocalPipelineEngine engine = new LocalPipelineEngine(spec, Corpora.builtIn())) {
            for (int g = 0; g < l.modelStages(); g++) {
                Device d = engine.stage(0, g).device();
                if (d instanceof CudaDevice cuda) {
                    cuda.setGemmPrecision(precision);
                }
            }
            for (int i = 0; i < warmup + steps; i++) {
                var m = engine.trainStep().step();
                losses[i] = m.loss();
                if (i >= warmup) {
                    ms[i - warmup] = m.stepMs();
                }
            }
        }
        return new Run(Median.of(ms), losses);
    }
}
