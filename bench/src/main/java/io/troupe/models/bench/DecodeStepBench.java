package io.troupe.models.bench;

import io.troupe.actors.cli.Options;
import io.troupe.bench.BenchOptions;
import io.troupe.bench.Median;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.gpt.ParameterLayout;
import io.troupe.models.infer.BatchScheduler;
import io.troupe.models.infer.Generation;
import io.troupe.models.infer.GenerationListener;
import io.troupe.models.infer.InferenceWeights;
import io.troupe.models.infer.KvCachedGpt;
import io.troupe.models.infer.KvPrecision;
import io.troupe.models.infer.PagedKvCache;
import io.troupe.models.infer.Quantization;
import io.troupe.models.infer.RowSplitter;
import io.troupe.models.infer.SamplingParams;
import io.troupe.models.infer.StepBatch;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * {@code scripts/bench decode}: the cost of one decoding step of the serving model (no HTTP) at
 * batch 1, 4 and 16, in one run. Each batch size runs {@code --rounds} rounds of {@code --batch}
 * sequences with {@code --prompt-bytes}-token prompts and {@code --max-tokens} new tokens through
 * a {@link BatchScheduler} (batch 13 too); only the steps where every sequence decodes one token are timed (the
 * prefill steps are not). Prints the median step time and its time per token, and the batched
 * per-token cost against batch 1 (a ratio above 1 is the speedup batching can give at most).
 *
 * {@code --batches} names other batch sizes (the first is the baseline of the ratios).
 *
 * <p>Last line: {@code step_ms_b1=... step_ms_b4=... step_ms_b13=... step_ms_b16=... token_speedup_b4=...
 * token_speedup_b13=... token_speedup_b16=...}.
 */
public final class DecodeStepBench {
    private DecodeStepBench() {
    }

    private static final java.lang.management.ThreadMXBean MX = java.lang.management.ManagementFactory
        .getThreadMXBean();

    /** With one row thread, the step's CPU time (steadier than wall time on a shared host). */
    private static boolean cpuTime;
    private static KvPrecision kv;

    public static void main(String[] args) {
        Options o = BenchOptions.parse(args, "decode",
            "usage: scripts/bench decode [--model M] [--quantize none|int8] [--kv-dtype f32|bf16] [--threads T]"
                + " [--rounds N] [--prompt-bytes N] [--max-tokens N] [--batches 1,4,13,16]",
            Set.of("model", "quantize", "kv-dtype", "threads", "rounds", "prompt-bytes", "max-tokens", "batches"),
            Set.of());
        String model = o.get("model", "small");
        Quantization q = o.has("quantize") ? Quantization.parse(o.get("quantize")) : Quantization.NONE;
        kv = KvPrecision.parse(o.get("kv-dtype", "f32"));
        int threads = o.getInt("threads", Runtime.getRuntime().availableProcessors());
        int rounds = o.getInt("rounds", 6);
        int promptTokens = o.getInt("prompt-bytes", 32);
        int maxTokens = o.getInt("max-tokens", 32);
        cpuTime = threads == 1;
        GptConfig cfg = GptConfig.preset(model);
        float[] flat = new float[(int) ParameterLayout.full(cfg).numel()];
        SplittableRandom rnd = new SplittableRandom(7);
        for (int i = 0; i < flat.length; i++) {
            flat[i] = (float) (rnd.nextDouble() * 0.2 - 0.1);
        }
        InferenceWeights w = InferenceWeights.fromFlat(cfg, flat, q);
        System.out.printf(Locale.ROOT, "decode bench: model %s (d %d, %d layers, context %d), %s weights, "
                + "%s KV cache, %d row threads, %d-token prompts, %d new tokens; %s time; float32 linears: %s%n",
            cfg.name(), cfg.dModel(), cfg.nLayer(), cfg.seqLen(), q.name().toLowerCase(Locale.ROOT), kv, threads,
            promptTokens, maxTokens, threads == 1 ? "the step thread's CPU" : "wall",
            io.troupe.models.infer.Fp32Linear.usesVectorApi() ? "Vector API kernel" : "axpy kernel");
        // 13: about what a continuously batched server runs, and a row count the linears' blocks do not divide
        int[] batches = o.getInts("batches", new int[] {1, 4, 13, 16});
        for (int b : batches) {
            if (b < 1) {
                throw new IllegalArgumentException("--batches must be positive: --batches=" + o.get("batches"));
            }
        }
        double[] stepMs = new double[batches.length];
        try (RowSplitter rows = new RowSplitter(threads, 4)) {
            for (int warm = 0; warm < 2; warm++) {
                for (int b = 0; b < batches.length; b++) {
                    stepMs[b] = measure(w, rows, batches[b], warm == 0 ? 2 : rounds, promptTokens, maxTokens);
                }
            }
        }
        System.out.println();
        System.out.println("| batch | step ms (median) | ms per token | per-token speedup vs batch 1 |");
        System.out.println("|---|---|---|---|");
        for (int b = 0; b < batches.length; b++) {
            System.out.printf(Locale.ROOT, "| %d | %.3f | %.4f | %.2f |%n", batches[b], stepMs[b],
                stepMs[b] / batches[b], stepMs[0] / (stepMs[b] / batches[b]));
        }
        StringBuilder last = new StringBuilder();
        for (int b = 0; b < batches.length; b++) {
            last.append(String.format(Locale.ROOT, "step_ms_b%d=%.3f ", batches[b], stepMs[b]));
        }
        for (int b = 1; b < batches.length; b++) {
            last.append(String.format(Locale.ROOT, "token_speedup_b%d=%.2f ", batches[b],
                stepMs[0] / (stepMs[b] / batches[b])));
        }
        System.out.println(last.toString().strip());
    }


    /** Median time of the steps in which all {@code batch} sequences decode one token each. */
    private static double measure(InferenceWeights w, RowSplitter rows, int batch, int rounds, int promptTokens,
                                  int maxTokens) {
        GptConfig cfg = w.config();
        int blocks = PagedKvCache.blocksForBudget(cfg, 16, 64, kv);
        KvCachedGpt model = new KvCachedGpt(w, new PagedKvCache(cfg, 16, blocks, cfg.nLayer(), kv));
        model.splitRows(rows);
        BatchScheduler s = new BatchScheduler(model, new BatchScheduler.Limits(batch, 4096, 1024));
        List<Double> times = new ArrayList<>();
        long id = 0;
        for (int round = 0; round < rounds; round++) {
            for (int i = 0; i < batch; i++) {
                int[] prompt = new int[promptTokens];
                for (int t = 0; t < promptTokens; t++) {
                    prompt[t] = 32 + (int) ((id * 31 + t * 7) % 90);
                }
                s.submit(new Generation(id++, prompt, cfg.seqLen(), SamplingParams.greedy(maxTokens),
                    System.nanoTime(), Long.MAX_VALUE, GenerationListener.NONE));
            }
            while (s.hasWork()) {
                StepBatch b = s.plan(System.nanoTime());
                boolean decode = b.size() == batch && b.logitCount() == batch;
                long t0 = cpuTime ? MX.getCurrentThreadCpuTime() : System.nanoTime();
                float[] logits = model.forward(b);
                long t1 = cpuTime ? MX.getCurrentThreadCpuTime() : System.nanoTime();
                if (decode) {
                    times.add((t1 - t0) / 1e6);
                }
                s.complete(logits, System.nanoTime());
            }
        }
        return Median.of(times);
    }
}
