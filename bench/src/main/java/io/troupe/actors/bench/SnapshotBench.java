package io.troupe.actors.bench;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.troupe.actors.api.JobEvent;
import io.troupe.actors.api.JobHandle;
import io.troupe.actors.api.TrainingJob;
import io.troupe.actors.api.Troupe;
import io.troupe.actors.cli.Options;
import io.troupe.actors.cluster.NodeSettings;
import io.troupe.actors.cluster.TroupeNode;
import io.troupe.actors.cluster.snapshot.SnapshotCounters;
import io.troupe.bench.BenchOptions;
import io.troupe.runtime.transport.TransportNode;
import io.troupe.runtime.transport.TransportSettings;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * {@code scripts/bench snapshots [--rounds R] [--steps N] [--model M] [--layout L] [--batch B]
 * [--microbatches K]}: the steady-state cost of in-memory snapshots ({@code troupe.recovery.snapshots}).
 * Runs the same cluster job (default: the small model, layout 2x1, batch 16, 4 micro-batches, N
 * steps, disk checkpoints every 10 steps as cluster jobs default to) on two nodes in this JVM, each
 * with its own media driver (so the buddy copies cross UDP as between machines), with snapshots off
 * (the baseline) and on, R times each after one warm-up job, alternating which goes first; prints
 * each job's step time (wall time from the 10th committed step to the last, over the steps between)
 * and the medians; for each job with snapshots, what they cost from the workers' own counters: the
 * time each took on the device thread (on the step's path) and the bytes and time of each copy sent
 * (on the send thread, overlapping the next step).
 *
 * <p>Last line: {@code off_step_ms=... on_step_ms=... snapshot_step_ratio=...} (medians).
 */
public final class SnapshotBench {
    private SnapshotBench() {
    }

    private record Job(int rounds, int steps, String model, String layout, int batch, int microbatches) {
    }

    static final String USAGE = "usage: scripts/bench snapshots [--rounds R] [--steps N] [--model M] [--layout L] "
        + "[--batch B] [--microbatches K]";

    public static void main(String[] args) throws Exception {
        Options opts = BenchOptions.parse(args, "snapshots", USAGE,
            Set.of("rounds", "steps", "model", "layout", "batch", "microbatches"), Set.of());
        int rounds = opts.getInt("rounds", 3);
        int steps = opts.getInt("steps", 40);
        String model = opts.get("model", "small");
        String layout = opts.get("layout", "2x1");
        int batch = opts.getInt("batch", 16);
        int microbatches = opts.getInt("microbatches", 4);
        if (steps < 20) {
            throw new IllegalArgumentException("--steps must be >= 20: steps=" + steps);
        }
        if (rounds < 1) {
            throw new IllegalArgumentException("--rounds must be >= 1: rounds=" + rounds);
        }
        Job o = new Job(rounds, steps, model, layout, batch, microbatches);
        System.out.printf(Locale.ROOT, "snapshot bench: model %s, layout %s on 2 nodes (a media driver each), "
            + "batch %d, %d micro-batches, %d steps per job, %d rounds%n", model, layout, batch, microbatches, steps,
            rounds);
        run(o, false);
        List<Double> off = new ArrayList<>();
        List<Double> on = new ArrayList<>();
        for (int r = 0; r < rounds; r++) {
            boolean onFirst = r % 2 == 1;
            double first = run(o, onFirst);
            double second = run(o, !onFirst);
            double a = onFirst ? second : first;
            double b = onFirst ? first : second;
            off.add(a);
            on.add(b);
            System.out.printf(Locale.ROOT, "round %d: snapshots off %.2f ms/step, on %.2f ms/step (ratio %.3f)%n",
                r + 1, a, b, b / a);
        }
        double mOff = median(off);
        double mOn = median(on);
        System.out.printf(Locale.ROOT, "off_step_ms=%.2f on_step_ms=%.2f snapshot_step_ratio=%.3f%n", mOff, mOn,
            mOn / mOff);
    }

    private static double median(List<Double> v) {
        List<Double> s = new ArrayList<>(v);
        Collections.sort(s);
        int n = s.size();
        return n % 2 == 1 ? s.get(n / 2) : (s.get(n / 2 - 1) + s.get(n / 2)) / 2;
    }

    /** One job on a fresh 2-node cluster; its wall time per step from the 10th commit to the last (ms). */
    private static double run(Job o, boolean snapshots) throws Exception {
        // fail-mixed-versions as reference.conf sets it: on the bench's classpath Pekko's own
        // reference.conf may come first (its lib directory is in no particular order)
        Config config = ConfigFactory.parseString("troupe.recovery.snapshots = " + (snapshots ? "on" : "off")
            + "\npekko.fail-mixed-versions = off").withFallback(ConfigFactory.load());
        NodeSettings base = NodeSettings.from(config).withPort(0);
        Path dir = Files.createTempDirectory("troupe-snapshot-bench");
        try (TransportNode ta = TransportNode.launch(TransportSettings.defaults(), Throwable::printStackTrace);
             TransportNode tb = TransportNode.launch(TransportSettings.defaults(), Throwable::printStackTrace);
             TroupeNode first = TroupeNode.start(base.withRoles(List.of("worker", "coordinator"), 1)
                 .withSeeds(List.of()), config, ta);
             TroupeNode second = TroupeNode.start(base.withRoles(List.of("worker"), 1)
                 .withSeeds(List.of(first.hostPort())), config, tb)) {
            JobHandle h = Troupe.using(first).submit(TrainingJob.builder().model(o.model()).layout(o.layout())
                .schedule("1f1b").microbatches(o.microbatches()).batchSize(o.batch()).steps(o.steps())
                .lr(3e-3f, 3e-4f, 2).gradClip(1f).seed(5).stepTimeoutMs(120_000).validation(0, 1).device("cpu")
                .checkpoints(10, dir.toString())
                .build());
            long[] tenth = {0};
            long[] last = {0};
            h.onEvent(e -> {
                if (e instanceof JobEvent.StepCompleted s) {
                    if (s.step() == 10) {
                        tenth[0] = System.nanoTime();
                    }
                    last[0] = System.nanoTime();
                }
            });
            SnapshotCounters.Totals before = SnapshotCounters.read();
            JobEvent end = h.await(Duration.ofMinutes(10));
            SnapshotCounters.Totals t = SnapshotCounters.read().since(before);
            if (snapshots && t.taken() > 0) {
                double sentMb = t.sent() == 0 ? 0 : t.sentBytes() / 1e6 / t.sent();
                double sendMs = t.sent() == 0 ? 0 : t.sendNs() / 1e6 / t.sent();
                System.out.printf(Locale.ROOT, "  snapshots: %d taken, %.1f ms each on the device thread, %d waited "
                    + "for a commit (%.2f ms in all); %d sent, %.1f MB and %.1f ms each on the send thread%n",
                    t.taken(), t.captureNs() / 1e6 / t.taken(), t.commitWaits(), t.commitWaitNs() / 1e6, t.sent(),
                    sentMb, sendMs);
            }
            if (!(end instanceof JobEvent.Finished)) {
                throw new IllegalStateException("job ended with " + end);
            }
            if (tenth[0] == 0) {
                throw new IllegalStateException("the 10th step was committed before the bench listened");
            }
            return (last[0] - tenth[0]) / 1e6 / (o.steps() - 10);
        } finally {
            deleteTree(dir);
        }
    }

    private static void deleteTree(Path dir) throws java.io.IOException {
        try (var s = Files.walk(dir)) {
            s.sorted(Collections.reverseOrder()).forEach(p -> p.toFile().delete());
        }
    }
}
