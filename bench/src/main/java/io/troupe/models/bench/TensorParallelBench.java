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
import io.troupe.models.parallel.tp.PendingTensorParallelCollective;
import io.troupe.models.parallel.tp.TensorParallelGroup;
import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.tensor.Tensor;
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
 * tensor parallelism over two members of an in-process tp group, one thread each, in the same run.
 * Steps alternate between the two so that load from elsewhere on the machine falls on both alike;
 * the figures are medians after the warm-up. {@code allreduce_share} is the part of member 0's tp
 * step spent inside tp collectives (all-reduces, and the cross-entropy's max and sums), waiting for
 * the peer included. Last line:
 * {@code model=<name> single_ms=<x> tp2_ms=<x> ratio=<tp2/single> allreduce_share=<x>}.
 */
public final class TensorParallelBench {
    private TensorParallelBench() {
    }

    /** A tp group that adds up the nanoseconds its member spends inside collectives. */
    private static final class TimedGroup implements TensorParallelGroup {
        private final TensorParallelGroup inner;
        long nanos;

        TimedGroup(TensorParallelGroup inner) {
            this.inner = inner;
        }

        @Override
        public int size() {
            return inner.size();
        }

        @Override
        public int index() {
            return inner.index();
        }

        @Override
        public void allReduceSum(Tensor t) {
            long t0 = System.nanoTime();
            inner.allReduceSum(t);
            nanos += System.nanoTime() - t0;
        }

        @Override
        public void allReduceMax(Tensor t) {
            long t0 = System.nanoTime();
            inner.allReduceMax(t);
            nanos += System.nanoTime() - t0;
        }

        @Override
        public void allGather(Tensor shard, Tensor full) {
            long t0 = System.nanoTime();
            inner.allGather(shard, full);
            nanos += System.nanoTime() - t0;
        }

        @Override
        public void reduceScatter(Tensor full, Tensor shard) {
            long t0 = System.nanoTime();
            inner.reduceScatter(full, shard);
            nanos += System.nanoTime() - t0;
        }

        // Async collectives count the time blocked in the start and in the await, not the time in flight.

        @Override
        public PendingTensorParallelCollective allReduceSumAsync(Tensor t) {
            long t0 = System.nanoTime();
            PendingTensorParallelCollective p = inner.allReduceSumAsync(t);
            nanos += System.nanoTime() - t0;
            return timed(p);
        }

        @Override
        public PendingTensorParallelCollective allGatherAsync(Tensor shard, Tensor full) {
            long t0 = System.nanoTime();
            PendingTensorParallelCollective p = inner.allGatherAsync(shard, full);
            nanos += System.nanoTime() - t0;
            return timed(p);
        }

        @Override
        public PendingTensorParallelCollective reduceScatterAsync(Tensor full, Tensor shard) {
            long t0 = System.nanoTime();
            PendingTensorParallelCollective p = inner.reduceScatterAsync(full, shard);
            nanos += System.nanoTime() - t0;
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

        double step(int[] x, int[] y) {
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
            int[] x = new int[n];
            int[] y = new int[n];
            for (int i = -warmup; i < steps; i++) {
                batches.fill(Math.max(i, 0) + warmup, rows, 0, rows, x, y);
                long t0 = System.nanoTime();
                double lossSingle = single.step(x, y);
                long t1 = System.nanoTime();
                timed0.nanos = 0;
                Future<Double> other = peer.submit(() -> tp1.step(x, y));
                double lossTp = tp0.step(x, y);
                other.get(120, TimeUnit.SECONDS);
                long t2 = System.nanoTime();
                if (i >= 0) {
                    singleMs[i] = (t1 - t0) / 1e6;
                    tpMs[i] = (t2 - t1) / 1e6;
                    share[i] = timed0.nanos / (double) (t2 - t1);
                    System.out.printf(Locale.ROOT,
                        "step %2d: single %.1f ms (loss %.5f), tp2 %.1f ms (loss %.5f), tp collectives %.0f%%%n",
                        i, singleMs[i], lossSingle, tpMs[i], lossTp, 100 * share[i]);
                }
            }
            double s = Median.of(singleMs);
            double t = Median.of(tpMs);
            System.out.printf(Locale.ROOT, "model=%s single_ms=%.1f tp2_ms=%.1f ratio=%.3f allreduce_share=%.3f%n",
                model, s, t, t / s, Median.of(share));
        } finally {
            peer.shutdownNow();
        }
    }
}
