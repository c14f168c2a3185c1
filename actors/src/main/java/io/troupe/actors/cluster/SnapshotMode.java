package io.troupe.actors.cluster;

import java.util.Locale;

/**
 * Whether a cluster's jobs keep in-memory snapshots ({@code troupe.recovery.snapshots}). At every epoch the
 * coordinator compares each node's snapshot slots with the direct memory the node advertised
 * ({@link WorkerDescription#snapshotMemoryBytes()}); the mode says what a node that cannot hold them does.
 */
public enum SnapshotMode {
    /** Snapshots when every node of the epoch holds its slots; otherwise that epoch runs without them, saying why. */
    AUTO,
    /** Snapshots always: a job whose epoch does not fit is refused, naming the node, the bytes and its limit. */
    ON,
    /** No snapshots: disk checkpoints only. */
    OFF;

    /**
     * The mode a config value names: {@code auto}, or {@code on} / {@code off} (HOCON's booleans:
     * also true/false, yes/no).
     *
     * @throws IllegalArgumentException naming the value when it is none of those
     */
    public static SnapshotMode parse(String value) {
        return switch (value.trim().toLowerCase(Locale.ROOT)) {
            case "auto" -> AUTO;
            case "on", "true", "yes" -> ON;
            case "off", "false", "no" -> OFF;
            default -> throw new IllegalArgumentException("troupe.recovery.snapshots must be auto, on or off: "
                + "snapshots=" + value);
        };
    }

    /** The config value: {@code auto}, {@code on} or {@code off}. */
    public String optionName() {
        return name().toLowerCase(Locale.ROOT);
    }
}
