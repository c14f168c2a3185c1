package io.troupe.models.bench;

import io.troupe.models.data.Corpora;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.train.TrainConfig;
import io.troupe.models.train.Trainer;
import io.troupe.runtime.cpu.CpuDevice;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
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

    private WakeupBench() {
    }

    public static void main(String[] args) throws InterruptedException {
        int steps = 15;
        int rounds = 3;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--steps" -> steps = Integer.parseInt(args[++i]);
                case "--rounds" -> rounds = Integer.parseInt(args[++i]);
                default -> throw new IllegalArgumentException("unknown option '" + args[i]
                    + "': usage: bench wakeups [--steps N] [--rounds N]");
            }
        }
        GptConfig cfg = GptConfig.preset("small");
        TrainConfig tc = TrainConfig.defaults(cfg, 1_000_000);
        List<String> modes = new ArrayList<>(List.of("alone"));
        for (long p : PARKS_NS) {
            modes.add("park " + label(p));
        }
        modes.add("yield");
        modes.add("spin");
        double[][] ms = new double[modes.size()][rounds];
        double[] wakeupsPerSec = new double[modes.size()];
        try (CpuDevice dev = new CpuDevice(1); Trainer trainer = new Trainer(tc, dev, Corpora.builtIn())) {
            System.out.printf(Locale.ROOT, "bench wakeups: small GPT on 1 thread, %d steps per measurement, %d rounds, %d cores%n",
                steps, rounds, Runtime.getRuntime().availableProcessors());
            for (int i = 0; i < 10; i++) {
                trainer.trainStep();
            }
            for (int r = 0; r < rounds; r++) {
                for (int m = 0; m < modes.size(); m++) {
                    AtomicBoolean stop = new AtomicBoolean();
                    AtomicLong wakeups = new AtomicLong();
                    Thread waiter = m == 0 ? null : waiter(modes.get(m), stop, wakeups);
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
                    ms[m][r] = StepBench.median(stepMs);
                }
            }
        }
        double alone = StepBench.median(ms[0]);
        System.out.printf(Locale.ROOT, "%-14s %10s %8s %14s%n", "second thread", "ms/step", "ratio", "wake-ups/s");
        double[] ratio = new double[modes.size()];
        for (int m = 0; m < modes.size(); m++) {
            double med = StepBench.median(ms[m]);
            ratio[m] = med / alone;
            System.out.printf(Locale.ROOT, "%-14s %10.2f %8.3f %14s%n", m == 0 ? "none" : modes.get(m), med, ratio[m],
                m == 0 || modes.get(m).equals("spin") ? "-" : String.format(Locale.ROOT, "%.0f", wakeupsPerSec[m]));
        }
        System.out.printf(Locale.ROOT, "alone_ms=%.2f park50us_ratio=%.3f park1ms_ratio=%.3f yield_ratio=%.3f spin_ratio=%.3f%n",
            alone, ratio[1], ratio[3], ratio[modes.size() - 2], ratio[modes.size() - 1]);
    }

    private static Thread waiter(String mode, AtomicBoolean stop, AtomicLong wakeups) {
        Runnable body;
        if (mode.equals("yield")) {
            body = () -> {
                while (!stop.get()) {
                    Thread.yield();
                    wakeups.incrementAndGet();
                }
            };
        } else if (mode.equals("spin")) {
            body = () -> {
                while (!stop.get()) {
                    Thread.onSpinWait();
                }
            };
        } else {
            long ns = parkNs(mode);
            body = () -> {
                while (!stop.get()) {
                    LockSupport.parkNanos(ns);
                    wakeups.incrementAndGet();
                }
            };
        }
        Thread t = new Thread(body, "waiter-" + mode.replace(' ', '-'));
        t.setDaemon(true);
        t.start();
        return t;
    }

    private static long parkNs(String mode) {
        for (long p : PARKS_NS) {
            if (mode.equals("park " + label(p))) {
                return p;
            }
        }
        throw new IllegalArgumentException("unknown waiter mode '" + mode + "'");
    }

    private static String label(long ns) {
        return ns >= 1_000_000 ? ns / 1_000_000 + "ms" : ns / 1_000 + "us";
    }
}
