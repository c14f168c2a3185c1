package io.troupe.actors.cluster;

import io.troupe.actors.cluster.snapshot.SnapshotExchange;
import java.util.List;

/**
 * The in-memory snapshot part of an assignment ({@code troupe.recovery.snapshots}).
 *
 * @param enabled     each rank snapshots its shard at every commit and sends a copy to its buddy
 * @param buddyOf     for each rank, the rank (on another node) its snapshots are sent to; -1: none sent
 *                    (a data-parallel replica on another node holds the same state, or there is no other node)
 * @param endpoints   each rank's snapshot endpoint
 * @param pieceShiftOf each rank's receiver's piece size (log2 of bytes): what is sent to a rank travels in pieces
 *                    of its size, which fit that rank's receive budget
 * @param restoreStep the epoch starts from the snapshots of this step (-1: from the disk checkpoint, if any)
 * @param holderOf    for each rank, the rank of this epoch that holds the snapshot it restores
 *                    (itself, or one that sends it over)
 * @param sourceOf    for each rank, the rank whose snapshot it restores (itself, or a replica of it)
 */
public record SnapshotPlan(boolean enabled, int[] buddyOf, List<String> endpoints, int[] pieceShiftOf, long restoreStep,
                           int[] holderOf, int[] sourceOf) implements CrossNodeMessage {

    /** No snapshots: commits are on disk only. */
    public static final SnapshotPlan OFF = new SnapshotPlan(false, new int[0], List.of(), new int[0], -1, new int[0],
        new int[0]);

    public SnapshotPlan {
        if (enabled && (buddyOf.length != endpoints.size() || buddyOf.length != pieceShiftOf.length)) {
            throw new IllegalArgumentException("a buddy, an endpoint and a piece size per rank: buddies="
                + buddyOf.length + ", endpoints=" + endpoints.size() + ", piece sizes=" + pieceShiftOf.length);
        }
        for (int r = 0; enabled && r < pieceShiftOf.length; r++) {
            if (!SnapshotExchange.isPieceShift(pieceShiftOf[r])) {
                throw new IllegalArgumentException("rank " + r + "'s snapshot piece size must be 2^"
                    + SnapshotExchange.MIN_PIECE_SHIFT + " to 2^" + SnapshotExchange.MAX_PIECE_SHIFT
                    + " bytes: pieceShift=" + pieceShiftOf[r]);
            }
        }
        if (restoreStep >= 0 && (holderOf.length != buddyOf.length || sourceOf.length != buddyOf.length)) {
            throw new IllegalArgumentException("a holder and a source per rank: holders=" + holderOf.length
                + ", sources=" + sourceOf.length + ", ranks=" + buddyOf.length);
        }
    }

    /** Whether this epoch starts from in-memory snapshots. */
    public boolean restoresFromMemory() {
        return restoreStep >= 0;
    }
}
