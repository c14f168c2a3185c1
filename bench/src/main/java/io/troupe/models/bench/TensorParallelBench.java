package io.troupe.models.bench;

import io.troupe.actors.cli.Options;
import io.troupe.bench.BenchOptions;
import io.troupe.bench.Median;
import io.troupe.models.data.Batches;
import io.troupe.models.data.Corpora;
import io.troupe.models.gpt.Gpt;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.optim.AdamW;
import io.troupe.models.optim.AdamWConfig;
import io.troupe.models.parallel.tp.LocalTensorParallelGroup;
import io.troupe.models.parallel.tp.ObservedTensorParallelGroup;
import io.troupe.models.parallel.tp.PendingTensorParallelCollective;
import io.troupe.models.parallel.tp.TensorParallelGroup;
import io.troupe.runtime.cpu.CpuDevice;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

/**
 * {@code scripts/bench tp [--model big|small] [--steps N] [--warmup N]}: one training step (forward,
 * backward, AdamW) of the whole GPT on one device with two threads, against the same step split by
 * tensor parallelism over two members of an in-process tp group, one thread each, in the same run;
 * the tp step runs twice per iteration, with the backward's tp overlap on (each column-parallel
 * layer's input-gradient all-reduce started asynchronously while the weight gradients are computed)
 * and off (B then W), in alternating order. Steps alternate so that load from elsewhere on the
 * machine falls on all alike; the figures are medians after the warm-up. {@code allreduce_share} is
 * the part of member 0's tp step (overlap on) spent blocked in tp collectives (all-reduces, the
 * cross-entropy's max and sums, the start and the await of the async ones), waiting for the peer
 * included; {@code _off} the same with the overlap off. Last line:
 * {@code model=<name> single_ms=<x> tp2_ms=<x> ratio=<tp2/single> allreduce_share=<x>
 * tp2_no_overlap_ms=<x> allreduce_share_no_overlap=<x> overlap_ratio=<x>}, where {@code overlap_ratio} is
 * the median over iterations of (tp step, overlap on) / (tp step, overlap off) of the same iteration.
 */
public final class TensorParallelBench {
    private TensorParallelBench() {
    }

    /** A tp group that adds up the nanoseconds its member spends inside collectives. */
    private static final class TimedGroup extends ObservedTensorParallelGroup {
        long nanos;

        TimedGroup(TensorParallelGroup inner) {
            super(inner);
        }

        @Override
        protected void completed(Collective c, long elements, long startNs) {
            nanos += System.nanoTime() - startNs;
        }

        // Async collectives count the time blocked in the start and in the await, not the time in flight.

        @Override
        protected PendingTensorParallelCollective started(Collective c, long elements, long startNs,
                                                          PendingTensorParallelCollective p) {
            nanos += System.nanoTime() - startNs;
            return timed(p);
        }

        private PendingTensorParallelCollective timed(PendingTensorParallelCollective p) {
            return new PendingTensorParallelCollective() {
                @Override
                public boolean isDone() {
                    return p.isDone();
                }

                @Override
                public void await(long timeoutNs) {
                    long t0 = System.nanoTime();
                    p.await(timeoutNs);
                    nanos += System.nanoTime() - t0;
                }

                @Override
                public void await() {
                    long t0 = System.nanoTime();
                    p.await();
                    nanos += System.nanoTime() - t0;
                }
            };
        }
    }

    /** One model (or tp member of it) with its optimizer, stepping on the bench's batches. */
    private static final class Runner implements AutoCloseable {
        final CpuDevice dev;
        final Gpt gpt;
        final AdamW opt;
        final int rows;

        Runner(GptConfig cfg, int threads, TensorParallelGroup group, int rows) {
            this.dev = new CpuDevice(threads);
            this.gpt = new Gpt(cfg, dev, group, rows, 0, cfg.nLayer(), true, true);
            gpt.initialize(1);
            this.opt = new AdamW(AdamWConfig.defaults(), dev, gpt.parameters(), gpt.params().numel());
            this.rows = rows;
        }

        double step(int[] x, int[] y, boolean overlap) {
            gpt.overlapTensorParallel(overlap);
            gpt.zeroGrads();
            gpt.forwardTokens(0, x, y);
            gpt.backward(0, null, 1f / x.length);
            opt.step(gpt.params(), gpt.grads(), 1e-3f);
            dev.synchronize();
            return gpt.loss(0);
        }

        @Override
        public void close() {
            opt.close();
            gpt.close();
            dev.close();
        }
    }

    /** One tp step of both members: {milliseconds, member 0's share blocked in tp collectives}. */
    private static double[] tpStep(ExecutorService peer, TimedGroup timed0, Runner tp0, Runner tp1, int[] x, int[] y,
                                   boolean overlap) throws Exception {
        timed0.nanos = 0;
        long t0 = System.nanoTime();
        Future<Double> other = peer.submit(() -> tp1.step(x, y, overlap));
        tp0.step(x, y, overlap);
        other.get(120, TimeUnit.SECONDS);
        long t1 = System.nanoTime();
        return new double[] {(t1 - t0) / 1e6, timed0.nanos / (double) (t1 - t0)};
    }

    public static void main(String[] args) throws Exception {
        Options o = BenchOptions.parse(args, "tp",
            "usage: scripts/bench tp [--model big|small] [--steps N] [--warmup N]",
            Set.of("model", "steps", "warmup"), Set.of());
        String model = o.get("model", "big");
        int steps = o.getInt("steps", 10);
        int warmup = o.getInt("warmup", 3);
        GptConfig cfg = GptConfig.preset(model);
        int rows = cfg.defaultBatchSize();
        int n = rows * cfg.seqLen();
        Batches batches = new Batches(Corpora.builtIn().train(), cfg.seqLen());
        List<TensorParallelGroup> groups = LocalTensorParallelGroup.create(2, 120_000);
        TimedGroup timed0 = new TimedGroup(groups.get(0));
        ExecutorService peer = Executors.newSingleThreadExecutor();
        try (Runner single = new Runner(cfg, 2, TensorParallelGroup.single(), rows);
             Runner tp0 = new Runner(cfg, 1, timed0, rows);
             Runner tp1 = peer.submit(() -> new Runner(cfg, 1, groups.get(1), rows)).get()) {
            System.out.printf(Locale.ROOT,
                "bench tp: %s GPT, batch %d x seq %d; one device with 2 threads against tp 2 "
                + "(two members, 1 thread each, in-process group)%n", model, rows, cfg.seqLen());
            double[] singleMs = new double[steps];
            double[] tpMs = new double[steps];
            double[] share = new double[steps];
            double[] tpOffMs = new double[steps];
            double[] shareOff = new double[steps];
            double[] paired = new double[steps];
            int[] x = new int[n];
            int[] y = new int[n];
            for (int i = -warmup; i < steps; i++) {
                batches.fill(Math.max(i, 0) + warmup, rows, 0, rows, x, y);
                long t0 = System.nanoTime();
                double lossSingle = single.step(x, y, false);
                long t1 = System.nanoTime();
                double[] onMsShare = null;
                double[] offMsShare = null;
                for (int k = 0; k < 2; k++) {
                    boolean overlap = (k == 0) == (Math.floorMod(i, 2) == 0);
                    double[] r = tpStep(peer, timed0, tp0, tp1, x, y, overlap);
                    if (overlap) {
                        onMsShare = r;
                    } else {
                        offMsShare = r;
                    }
                }
                if (i >= 0) {
                    singleMs[i] = (t1 - t0) / 1e6;
                    tpMs[i] = onMsShare[0];
                    share[i] = onMsShare[1];
                    tpOffMs[i] = offMsShare[0];
                    shareOff[i] = offMsShare[1];
                    paired[i] = tpMs[i] / tpOffMs[i];
                    System.out.printf(Locale.ROOT,
                        "step %2d: single %.1f ms (loss %.5f), tp2 overlap on %.1f ms (tp collectives %.1f%%), "
                        + "off %.1f ms (%.1f%%)%n", i, singleMs[i], lossSingle, tpMs[i], 100 * share[i], tpOffMs[i],
                        100 * shareOff[i]);
                }
            }
            double s = Median.of(singleMs);
            double t = Median.of(tpMs);
            double off = Median.of(tpOffMs);
            System.out.printf(Locale.ROOT, "model=%s single_ms=%.1f tp2_ms=%.1f ratio=%.3f allreduce_share=%.3f "
                + "tp2_no_overlap_ms=%.1f allreduce_share_no_overlap=%.3f overlap_ratio=%.3f%n",
                model, s, t, t / s, Median.of(share), off, Median.of(shareOff), Median.of(paired));
        } finally {
            peer.shutdownNow();
        }
    }
}
