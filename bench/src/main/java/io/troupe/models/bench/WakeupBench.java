package io.troupe.models.bench;

import io.troupe.actors.cli.Options;
import io.troupe.bench.BenchOptions;
import io.troupe.bench.BenchRecipe;
import io.troupe.bench.Median;
import io.troupe.models.data.Corpora;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.train.TrainConfig;
import io.troupe.models.train.Trainer;
import io.troupe.runtime.cpu.CpuDevice;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;

/**
 * {@code scripts/bench wakeups [--steps N] [--rounds N]}: what a thread that only waits costs a
 * training step running on another core. The small GPT trains on one thread while a second thread
 * waits the way data-plane threads wait: parking for 50 µs, 200 µs, 1 ms or 10 ms at a time,
 * yielding, or spinning. Each mode is measured in rounds interleaved with the baseline (no second
 * thread), in this run; it prints the median step time of each and its ratio to the baseline, and
 * the waiter's wake-ups per second. The runtime's idle strategies follow from it (docs/cluster.md).
 * Last line: {@code alone_ms=<x> park50us_ratio=<x> park1ms_ratio=<x> yield_ratio=<x> spin_ratio=<x>}.
 */
public final class WakeupBench {
    private static final long[] PARKS_NS = {50_000L, 200_000L, 1_000_000L, 10_000_000L};
    private static final long ALONE = -3;
    private static final long YIELD = -2;
    private static final long SPIN = -1;

    /** What the second thread does: park {@code parkNs} at a time, or one of ALONE (no thread), YIELD, SPIN. */
    private record Mode(String name, long parkNs) {
    }

    private WakeupBench() {
    }

    public static void main(String[] args) throws InterruptedException {
        Options o = BenchOptions.parse(args, "wakeups",
            "usage: scripts/bench wakeups [--steps N] [--rounds N]", Set.of("steps", "rounds"),
            Set.of());
        int steps = o.getInt("steps", 15);
        int rounds = o.getInt("rounds", 3);
        GptConfig cfg = GptConfig.preset("small");
        TrainConfig tc = BenchRecipe.of(cfg, 1_000_000);
        List<Mode> modes = new ArrayList<>(List.of(new Mode("none", ALONE)));
        for (long p : PARKS_NS) {
            modes.add(new Mode("park " + label(p), p));
        }
        modes.add(new Mode("yield", YIELD));
        modes.add(new Mode("spin", SPIN));
        double[][] ms = new double[modes.size()][rounds];
        double[] wakeupsPerSec = new double[modes.size()];
        try (CpuDevice dev = new CpuDevice(1); Trainer trainer = new Trainer(tc, dev, Corpora.builtIn())) {
            System.out.printf(Locale.ROOT,
                "bench wakeups: small GPT on 1 thread, %d steps per measurement, %d rounds, %d cores%n",
                steps, rounds, Runtime.getRuntime().availableProcessors());
            for (int i = 0; i < 10; i++) {
                trainer.trainStep();
            }
            for (int r = 0; r < rounds; r++) {
                for (int m = 0; m < modes.size(); m++) {
                    AtomicBoolean stop = new AtomicBoolean();
                    AtomicLong wakeups = new AtomicLong();
                    Thread waiter = modes.get(m).parkNs() == ALONE ? null : waiter(modes.get(m), stop, wakeups);
                    long t0 = System.nanoTime();
                    double[] stepMs = new double[steps];
                    for (int s = 0; s < steps; s++) {
                        stepMs[s] = trainer.trainStep().stepMs();
                    }
                    double seconds = (System.nanoTime() - t0) / 1e9;
                    if (waiter != null) {
                        stop.set(true);
                        waiter.join(5_000);
                        wakeupsPerSec[m] += wakeups.get() / seconds / rounds;
                    }
                    ms[m][r] = Median.of(stepMs);
                }
            }
        }
        double alone = Median.of(ms[0]);
        System.out.printf(Locale.ROOT, "%-14s %10s %8s %14s%n", "second thread", "ms/step", "ratio", "wake-ups/s");
        double[] ratio = new double[modes.size()];
        for (int m = 0; m < modes.size(); m++) {
            double med = Median.of(ms[m]);
            ratio[m] = med / alone;
            long kind = modes.get(m).parkNs();
            System.out.printf(Locale.ROOT, "%-14s %10.2f %8.3f %14s%n", modes.get(m).name(), med, ratio[m],
                kind == ALONE || kind == SPIN ? "-" : String.format(Locale.ROOT, "%.0f", wakeupsPerSec[m]));
        }
        System.out.printf(Locale.ROOT,
            "alone_ms=%.2f park50us_ratio=%.3f park1ms_ratio=%.3f yield_ratio=%.3f spin_ratio=%.3f%n",
            alone, ratio[1], ratio[3], ratio[modes.size() - 2], ratio[modes.size() - 1]);
    }

    private static Thread waiter(Mode mode, AtomicBoolean stop, AtomicLong wakeups) {
        long ns = mode.parkNs();
        Runnable body = () -> {
            while (!stop.get()) {
                if (ns == SPIN) {
                    Thread.onSpinWait();
                    continue;
                }
                if (ns == YIELD) {
                    Thread.yield();
                } else {
                    LockSupport.parkNanos(ns);
                }
                wakeups.incrementAndGet();
            }
        };
        Thread t = new Thread(body, "waiter-" + mode.name().replace(' ', '-'));
        t.setDaemon(true);
        t.start();
        return t;
    }

    private static String label(long ns) {
        return ns >= 1_000_000 ? ns / 1_000_000 + "ms" : ns / 1_000 + "us";
    }
}
