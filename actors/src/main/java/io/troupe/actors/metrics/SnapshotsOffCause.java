package io.troupe.actors.metrics;

/**
 * Why an epoch of a job runs without in-memory snapshots, in a few fixed kinds (the {@code reason} tag of
 * {@code troupe_snapshots_off_total}), read from {@link io.troupe.actors.api.JobEvent.Started#snapshots()};
 * a reason worded otherwise counts as {@link #OTHER}.
 */
public enum SnapshotsOffCause {
    /** A node's direct memory ({@code -XX:MaxDirectMemorySize}) cannot hold its snapshot slots. */
    DIRECT_MEMORY,
    /** {@code troupe.recovery.snapshots = off}. */
    CONFIGURED_OFF,
    /** Any other reason (a job option snapshots cannot serve, a worker taking no copies). */
    OTHER;

    /** The kind of a {@code Started} event's {@code "off: ..."} snapshots value. */
    public static SnapshotsOffCause of(String snapshots) {
        if (snapshots == null) {
            return OTHER;
        }
        if (snapshots.contains("-XX:MaxDirectMemorySize")) {
            return DIRECT_MEMORY;
        }
        if (snapshots.contains("troupe.recovery.snapshots = off")) {
            return CONFIGURED_OFF;
        }
        return OTHER;
    }
}
