package io.troupe.actors.cluster;

import com.typesafe.config.Config;
import java.nio.file.Path;
import java.time.Duration;

/**
 * How the coordinator recovers a job ({@code troupe.recovery} in reference.conf), validated once.
 *
 * @param maxRestarts        faults a job survives within {@code restartWindow}; the next one fails it, listing them
 *                           all
 * @param backoff            wait before the first re-plan; doubled at each further restart, at most {@code maxBackoff}
 * @param maxBackoff         the longest wait before a re-plan
 * @param checkpointInterval steps between disk checkpoints of a job that asked for none (0 = none)
 * @param jobRoot            where a job that named no checkpoint directory keeps its checkpoints and
 *                           record ({@code jobRoot/<job id>}); must be shared by every coordinator-role node
 * @param regatherTimeout    how long a recovery waits for enough workers before it fails the job
 * @param quiesceTimeout     how long a recovery waits for the workers to confirm an abort; the silent
 *                           ones are left out of the next layout
 * @param snapshotMode       whether every rank keeps an in-memory snapshot of its shard at each commit and a
 *                           copy on a buddy rank of another node, so a lost node costs no committed step:
 *                           {@link SnapshotMode#AUTO} where every node's direct memory holds the slots
 * @param restartWindow      how far back {@code maxRestarts} looks ({@link RestartBudget}): a fault older than this
 *                           no longer counts, unless the job has not trained past where that fault found it;
 *                           {@link Duration#ZERO} ({@code off}) counts every fault of the job
 */
public record RecoverySettings(int maxRestarts, Duration backoff, Duration maxBackoff, int checkpointInterval,
                               Path jobRoot, Duration regatherTimeout, Duration quiesceTimeout,
                               SnapshotMode snapshotMode, Duration restartWindow) {

    /** The default {@link #restartWindow}: one hour. */
    public static final Duration DEFAULT_RESTART_WINDOW = Duration.ofHours(1);

    /** Settings with snapshots {@link SnapshotMode#AUTO} and the default restart window. */
    public RecoverySettings(int maxRestarts, Duration backoff, Duration maxBackoff, int checkpointInterval,
                            Path jobRoot, Duration regatherTimeout, Duration quiesceTimeout) {
        this(maxRestarts, backoff, maxBackoff, checkpointInterval, jobRoot, regatherTimeout, quiesceTimeout,
            SnapshotMode.AUTO, DEFAULT_RESTART_WINDOW);
    }

    public RecoverySettings {
        java.util.Objects.requireNonNull(snapshotMode, "snapshotMode");
        java.util.Objects.requireNonNull(restartWindow, "restartWindow");
        if (restartWindow.isNegative()) {
            throw new IllegalArgumentException("troupe.recovery.restart-window must be a positive duration or off: "
                + "restart-window=" + restartWindow);
        }
        if (maxRestarts < 0) {
            throw new IllegalArgumentException("troupe.recovery.max-restarts must be >= 0: max-restarts="
                + maxRestarts);
        }
        if (checkpointInterval < 0) {
            throw new IllegalArgumentException("troupe.recovery.checkpoint-interval must be >= 0: checkpoint-interval="
                + checkpointInterval);
        }
        if (backoff.isNegative() || maxBackoff.compareTo(backoff) < 0) {
            throw new IllegalArgumentException("troupe.recovery back-off must satisfy 0 <= backoff <= max-backoff: "
                + "backoff=" + backoff + ", max-backoff=" + maxBackoff);
        }
    }

    /** The defaults of reference.conf. */
    public static RecoverySettings defaults() {
        return new RecoverySettings(3, Duration.ofMillis(500), Duration.ofSeconds(8), 10,
            Path.of(System.getProperty("java.io.tmpdir"), "troupe-jobs"), Duration.ofSeconds(60),
            Duration.ofSeconds(3), SnapshotMode.AUTO, DEFAULT_RESTART_WINDOW);
    }

    /** Reads {@code troupe.recovery}; a missing key takes its default. */
    public static RecoverySettings from(Config config) {
        RecoverySettings d = defaults();
        if (!config.hasPath("troupe.recovery")) {
            return d;
        }
        Config c = config.getConfig("troupe.recovery");
        String root = c.hasPath("job-root") ? c.getString("job-root") : "";
        return new RecoverySettings(
            c.hasPath("max-restarts") ? c.getInt("max-restarts") : d.maxRestarts(),
            c.hasPath("backoff") ? c.getDuration("backoff") : d.backoff(),
            c.hasPath("max-backoff") ? c.getDuration("max-backoff") : d.maxBackoff(),
            c.hasPath("checkpoint-interval") ? c.getInt("checkpoint-interval") : d.checkpointInterval(),
            root.isEmpty() ? d.jobRoot() : Path.of(root),
            c.hasPath("regather-timeout") ? c.getDuration("regather-timeout") : d.regatherTimeout(),
            c.hasPath("quiesce-timeout") ? c.getDuration("quiesce-timeout") : d.quiesceTimeout(),
            c.hasPath("snapshots") ? SnapshotMode.parse(String.valueOf(c.getValue("snapshots").unwrapped()))
                : d.snapshotMode(),
            c.hasPath("restart-window") ? restartWindow(c) : d.restartWindow());
    }

    /** {@code restart-window}: a positive duration, or {@code off} for the whole job. */
    private static Duration restartWindow(Config c) {
        return positiveOrOff(c, "troupe.recovery.", "restart-window", "1h, 30m");
    }

    /**
     * Setting {@code key} of {@code c} (the section {@code prefix} names): a positive duration, or
     * {@link Duration#ZERO} for {@code off}; anything else is refused, naming the setting and the value
     * ({@code example}: what to write).
     */
    static Duration positiveOrOff(Config c, String prefix, String key, String example) {
        Object raw = c.getValue(key).unwrapped();
        if (raw instanceof String text && text.trim().equalsIgnoreCase("off")) {
            return Duration.ZERO;
        }
        String refusal = prefix + key + " must be a positive duration (e.g. " + example + ") or off: " + key + "="
            + raw;
        Duration d;
        try {
            d = c.getDuration(key);
        } catch (com.typesafe.config.ConfigException e) {
            throw new IllegalArgumentException(refusal, e);
        }
        if (d.isZero() || d.isNegative()) {
            throw new IllegalArgumentException(refusal);
        }
        return d;
    }

    /** The faults of {@code record} that count against {@link #maxRestarts} at {@code nowMs}. */
    public int restartsCounted(JobRecord record, long nowMs) {
        return RestartBudget.counted(record.faults(), restartWindow, nowMs);
    }

    /** Whether jobs may keep in-memory snapshots ({@link SnapshotMode#AUTO} or {@link SnapshotMode#ON}). */
    public boolean snapshots() {
        return snapshotMode != SnapshotMode.OFF;
    }

    /** The wait before restart number {@code restart} (1-based): backoff, 2 backoff, 4 backoff ... capped. */
    public Duration backoffBefore(int restart) {
        long ms = backoff.toMillis() << Math.min(20, Math.max(0, restart - 1));
        return Duration.ofMillis(Math.min(ms, maxBackoff.toMillis()));
    }
}
