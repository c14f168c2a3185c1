package io.troupe.actors.cluster;

import java.util.List;

/**
 * The in-memory snapshot part of an assignment ({@code troupe.recovery.snapshots}).
 *
 * @param enabled     each rank snapshots its shard at every commit and sends a copy to its buddy
 * @param buddyOf     for each rank, the rank (on another node) that keeps copies of its snapshots; -1: none
 * @param endpoints   each rank's snapshot endpoint
 * @param restoreStep the epoch starts from the snapshots of this step (-1: from the disk checkpoint, if any)
 * @param holderOf    for each rank, the rank of this epoch that holds that rank's snapshot of
 *                    {@code restoreStep} (itself, or the one that keeps its copy and sends it over)
 */
public record SnapshotPlan(boolean enabled, int[] buddyOf, List<String> endpoints, long restoreStep, int[] holderOf)
    implements CrossNodeMessage {

    /** No snapshots: commits are on disk only. */
    public static final SnapshotPlan OFF = new SnapshotPlan(false, new int[0], List.of(), -1, new int[0]);

    public SnapshotPlan {
        if (enabled && (buddyOf.length != endpoints.size())) {
            throw new IllegalArgumentException("a buddy and an endpoint per rank: buddies=" + buddyOf.length + ", endpoints="
                + endpoints.size());
        }
        if (restoreStep >= 0 && holderOf.length != buddyOf.length) {
            throw new IllegalArgumentException("a holder per rank: holders=" + holderOf.length + ", ranks=" + buddyOf.length);
        }
    }

    /** Whether this epoch starts from in-memory snapshots. */
    public boolean restoresFromMemory() {
        return restoreStep >= 0;
    }
}
