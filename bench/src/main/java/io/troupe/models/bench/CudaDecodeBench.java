package io.troupe.models.bench;

import io.troupe.actors.cli.Options;
import io.troupe.bench.BenchOptions;
import io.troupe.bench.Median;
import io.troupe.models.ParamSpec;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.gpt.ParameterLayout;
import io.troupe.models.infer.BlockTable;
import io.troupe.models.infer.DeviceKvCachedGpt;
import io.troupe.models.infer.PagedKvCache;
import io.troupe.models.infer.StepBatch;
import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.cuda.CudaDevice;
import io.troupe.runtime.cuda.CudaSupport;
import io.troupe.runtime.device.Device;
import io.troupe.runtime.device.DeviceKind;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.Set;

/**
 * Decode steps of {@link DeviceKvCachedGpt} at batch 1, 6, 13 and 16 (each sequence with a 64-token
 * context), the small and big presets with random weights: median ms per step, tokens/s, the per-token
 * speedup of each batch over batch 1 ({@code b * t1 / tb}) and the step ratio {@code t16 / t1}, against
 * the serving goals' proxies (speedup at 16 >= 4, step ratio <= 2: on a GPU a decode step reads every
 * weight once whatever the batch, so 16 sequences should cost about what one does).
 *
 * <p>Before timing, it checks on each config that one sequence's logits are the same bits alone and among
 * 15 others, and (on a GPU, small config) that the batch-16 logits agree with the same forward on the CPU
 * device within {@value #CPU_TOLERANCE}: a failure prints MISMATCH and exits 1. Without a GPU and with
 * {@code --device=cuda} it prints "decode bench: no GPU" and exits 2; {@code --device=cpu} runs the same
 * bench on the CPU device (the reference loops: slow, it proves the bench runs).
 */
public final class CudaDecodeBench {
    static final double CPU_TOLERANCE = 1e-3;
    private static final int BLOCK_SIZE = 16;
    private static final int SEQUENCES = 16;

    private CudaDecodeBench() {
    }

    public static void main(String[] args) {
        String usage = "usage: CudaDecodeBench [--configs=small,big] [--batches=1,6,13,16] [--context=64]"
            + " [--steps=N] [--warmup=N] [--device=cuda|cpu]";
        Options o = BenchOptions.parse(args, "cuda-decode", usage,
            Set.of("configs", "batches", "context", "steps", "warmup", "device"), Set.of());
        List<String> configs = o.has("configs") ? Arrays.asList(o.get("configs").split(",")) : List.of("small", "big");
        int[] batches = o.has("batches") ? Arrays.stream(o.get("batches").split(",")).map(String::trim)
            .mapToInt(Integer::parseInt).toArray() : new int[] {1, 6, 13, 16};
        int context = o.getInt("context", 64);
        int steps = o.getInt("steps", 30);
        int warmup = o.getInt("warmup", 5);
        DeviceKind kind = o.has("device") ? DeviceKind.parse(o.get("device")) : DeviceKind.CUDA;
        if (steps < 1 || context < 1 || batches.length == 0 || batches[0] != 1
            || Arrays.stream(batches).anyMatch(b -> b < 1 || b > SEQUENCES)) {
            throw new IllegalArgumentException("need steps >= 1, context >= 1 and batches in [1, " + SEQUENCES
                + "] starting with 1: steps=" + steps + ", context=" + context + ", batches="
                + Arrays.toString(batches));
        }
        if (kind == DeviceKind.CUDA && !CudaSupport.isAvailable()) {
            System.out.println("decode bench: no GPU (" + CudaSupport.availability().reason() + "): not run");
            System.exit(2);
        }
        boolean bad = false;
        List<String> summary = new ArrayList<>();
        try (Device dev = kind == DeviceKind.CUDA ? new CudaDevice(0) : new CpuDevice(1)) {
            System.out.printf(Locale.ROOT, "%nDecode steps of DeviceKvCachedGpt on %s (context %d tokens, blocks of %d,"
                + " FP32 row-invariant linears, median of %d steps after %d warm-up)%n", dev.name(), context,
                BLOCK_SIZE, steps, warmup);
            System.out.println("| model | batch | ms/step | tokens/s | per-token speedup vs batch 1 |");
            System.out.println("|---|---|---|---|---|");
            for (String name : configs) {
                GptConfig cfg = GptConfig.preset(name.trim());
                if (context > cfg.seqLen()) {
                    throw new IllegalArgumentException("context " + context + " exceeds " + cfg.name() + "'s "
                        + cfg.seqLen() + " positions");
                }
                Setup s = new Setup(cfg, context, dev);
                try (DeviceKvCachedGpt m = s.model) {
                    s.prefill();
                    String check = s.checkInvariance();
                    if (kind == DeviceKind.CUDA && cfg.name().equals(configs.get(0).trim())) {
                        check += ", " + s.checkAgainstCpu();
                    }
                    bad |= check.contains("MISMATCH");
                    double[] ms = new double[batches.length];
                    for (int i = 0; i < batches.length; i++) {
                        ms[i] = s.time(batches[i], warmup, steps);
                        System.out.printf(Locale.ROOT, "| %s | %d | %.3f | %.0f | %.2f |%n", cfg.name(), batches[i],
                            ms[i], batches[i] / (ms[i] * 1e-3), batches[i] * ms[0] / ms[i]);
                    }
                    int last = batches.length - 1;
                    double speedup = batches[last] * ms[0] / ms[last];
                    double ratio = ms[last] / ms[0];
                    summary.add(String.format(Locale.ROOT, "decode %s device=%s batch1_ms=%.3f batch%d_ms=%.3f"
                        + " speedup=%.2f (goal >= 4: %s) step_ratio=%.2f (goal <= 2: %s); %s", cfg.name(),
                        kind.name().toLowerCase(Locale.ROOT), ms[0], batches[last],
                        ms[last], speedup, speedup >= 4 ? "met" : "MISSED", ratio, ratio <= 2 ? "met" : "MISSED",
                        check));
                }
            }
        }
        summary.forEach(System.out::println);
        if (bad) {
            System.out.println("decode bench: logits MISMATCH (see above)");
            System.exit(1);
        }
    }

    /** A random model on the device and 16 sequences prefilled to {@code context - 1} tokens. */
    private static final class Setup {
        final GptConfig cfg;
        final int context;
        final float[] flat;
        final PagedKvCache blocks;
        final DeviceKvCachedGpt model;
        final BlockTable[] tables = new BlockTable[SEQUENCES];
        final int[][] tokens = new int[SEQUENCES][];
        final StepBatch batch = new StepBatch();

        Setup(GptConfig cfg, int context, Device dev) {
            this.cfg = cfg;
            this.context = context;
            this.flat = randomParams(cfg, 1);
            int perSequence = (context + BLOCK_SIZE - 1) / BLOCK_SIZE;
            this.blocks = new PagedKvCache(cfg, BLOCK_SIZE, SEQUENCES * perSequence, 0);
            this.model = DeviceKvCachedGpt.fromFlat(cfg, flat, blocks, dev);
            Random rnd = new Random(2);
            for (int s = 0; s < SEQUENCES; s++) {
                tables[s] = new BlockTable();
                tokens[s] = new int[context];
                for (int p = 0; p < context; p++) {
                    tokens[s][p] = rnd.nextInt(cfg.vocabSize());
                }
            }
        }

        /** Positions [0, context - 1) of every sequence, a prompt chunk each, two sequences a step. */
        void prefill() {
            prefill(model, blocks);
        }

        void prefill(DeviceKvCachedGpt m, PagedKvCache cache) {
            for (int s = 0; s < SEQUENCES; s++) {
                cache.ensureCapacity(tables[s], context);
            }
            for (int s0 = 0; s0 < SEQUENCES; s0 += 2) {
                batch.clear();
                for (int s = s0; s < s0 + 2; s++) {
                    for (int p = 0; p < context - 1; p++) {
                        batch.add(tokens[s][p], p, tables[s], p == context - 2);
                    }
                }
                m.forward(batch);
            }
        }

        /** One decode step of sequences [0, b) at position context - 1 (rewriting the same keys each time). */
        float[] step(DeviceKvCachedGpt m, int b) {
            batch.clear();
            for (int s = 0; s < b; s++) {
                batch.add(tokens[s][context - 1], context - 1, tables[s], true);
            }
            return m.forward(batch);
        }

        double time(int b, int warmup, int steps) {
            for (int i = 0; i < warmup; i++) {
                step(model, b);
            }
            double[] ms = new double[steps];
            for (int i = 0; i < steps; i++) {
                long t0 = System.nanoTime();
                step(model, b);                       // returns the logits on the host: the step is done
                ms[i] = (System.nanoTime() - t0) / 1e6;
            }
            return Median.of(ms);
        }

        String checkInvariance() {
            float[] all = step(model, SEQUENCES);
            float[] one = step(model, 1);
            boolean same = Arrays.equals(one, Arrays.copyOf(all, cfg.vocabSize()));
            return "batch_invariant=" + (same ? "yes" : "no MISMATCH");
        }

        String checkAgainstCpu() {
            float[] gpu = step(model, SEQUENCES);
            try (CpuDevice cpu = new CpuDevice(1)) {
                PagedKvCache cpuBlocks = new PagedKvCache(cfg, BLOCK_SIZE, blocks.numBlocks(), 0);
                BlockTable[] saved = tables.clone();
                for (int s = 0; s < SEQUENCES; s++) {
                    tables[s] = new BlockTable();
                }
                try (DeviceKvCachedGpt ref = DeviceKvCachedGpt.fromFlat(cfg, flat, cpuBlocks, cpu)) {
                    prefill(ref, cpuBlocks);
                    float[] expected = step(ref, SEQUENCES);
                    double diff = 0;
                    for (int i = 0; i < gpu.length; i++) {
                        diff = Math.max(diff, Math.abs(gpu[i] - expected[i]));
                    }
                    boolean ok = diff <= CPU_TOLERANCE;
                    return String.format(Locale.ROOT, "vs_cpu_max_abs_diff=%.2g%s", diff, ok ? "" : " MISMATCH");
                } finally {
                    System.arraycopy(saved, 0, tables, 0, SEQUENCES);
                }
            }
        }
    }

    /** Weights drawn uniformly, LayerNorm gains near 1 (logits far from uniform: a strong comparison). */
    static float[] randomParams(GptConfig cfg, long seed) {
        ParameterLayout layout = ParameterLayout.full(cfg);
        float[] flat = new float[(int) layout.numel()];
        Random rnd = new Random(seed);
        for (ParamSpec s : layout.specs()) {
            boolean lnWeight = s.name().endsWith("ln1.weight") || s.name().endsWith("ln2.weight")
                || s.name().equals("ln_f.weight");
            for (long i = 0; i < s.numel(); i++) {
                float u = (float) (2 * rnd.nextDouble() - 1);
                flat[(int) (s.localOffset() + i)] = lnWeight ? 1f + 0.1f * u : 0.1f * u;
            }
        }
        return flat;
    }
}
