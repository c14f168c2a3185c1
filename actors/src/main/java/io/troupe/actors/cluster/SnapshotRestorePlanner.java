package io.troupe.actors.cluster;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * Decides where a recovery restores from: the in-memory snapshots of the last step committed by
 * every rank (each rank's own, or for a rank whose node was lost, the copy its buddy keeps), or the
 * disk checkpoint, saying why. Plain logic (no Pekko), one thread (the coordinator's).
 */
final class SnapshotRestorePlanner {
    private SnapshotRestorePlanner() {
    }

    /**
     * A restore from memory: the workers in rank order (survivors keep their rank, a replacement
     * takes a lost one's) and, per rank, the rank that holds its snapshot; or, when {@code ranks}
     * is null, why the disk checkpoint is used instead.
     */
    record Decision<W>(List<W> ranks, long step, int[] holderOf, String reason) {
        boolean fromMemory() {
            return ranks != null;
        }

        static <W> Decision<W> disk(String reason) {
            return new Decision<>(null, -1, new int[0], reason);
        }
    }

    /**
     * @param step        the last committed step (steps committed so far) the snapshots must hold
     * @param diskStep    the step of the last disk checkpoint (nothing to gain below or at it)
     * @param oldRanks    the previous epoch's workers by rank
     * @param sameLayout  whether the next epoch runs the previous epoch's layout
     * @param candidates  the workers that may take a rank, in preference order
     * @param worldSize   ranks of the next epoch
     * @param inventories per worker, the snapshots it holds of this job, pairs {rank, step}
     */
    static <W> Decision<W> plan(long step, long diskStep, List<W> oldRanks, boolean sameLayout, List<W> candidates,
                                int worldSize, Map<W, long[]> inventories) {
        if (step <= diskStep) {
            return Decision.disk("nothing committed since the disk checkpoint of step " + diskStep);
        }
        if (!sameLayout || oldRanks.size() != worldSize) {
            return Decision.disk("the layout changes (" + oldRanks.size() + " ranks before, " + worldSize + " now): a snapshot "
                + "restores only into its own rank");
        }
        List<W> ranks = new ArrayList<>();
        List<W> spare = new ArrayList<>(candidates);
        for (W w : oldRanks) {
            boolean kept = candidates.contains(w);
            ranks.add(kept ? w : null);
            spare.remove(w);
        }
        for (int k = 0; k < worldSize; k++) {
            if (ranks.get(k) == null) {
                if (spare.isEmpty()) {
                    return Decision.disk("too few workers to keep the layout");
                }
                ranks.set(k, spare.remove(0));
            }
        }
        int[] holderOf = new int[worldSize];
        for (int k = 0; k < worldSize; k++) {
            holderOf[k] = -1;
            if (holds(inventories.get(ranks.get(k)), k, step)) {
                holderOf[k] = k;
                continue;
            }
            for (int j = 0; j < worldSize && holderOf[k] < 0; j++) {
                if (holds(inventories.get(ranks.get(j)), k, step)) {
                    holderOf[k] = j;
                }
            }
            if (holderOf[k] < 0) {
                return Decision.disk("no worker holds rank " + k + "'s snapshot of step " + step
                    + " (it and its buddy's copy were lost, or snapshots are off)");
            }
        }
        return new Decision<>(List.copyOf(ranks), step, holderOf, "");
    }

    private static boolean holds(long[] inventory, int rank, long step) {
        if (inventory == null) {
            return false;
        }
        for (int i = 0; i + 1 < inventory.length; i += 2) {
            if (inventory[i] == rank && inventory[i + 1] == step) {
                return true;
            }
        }
        return false;
    }

    /**
     * Buddies for ranks on {@code nodeOfRank}: each rank's copy goes to the next rank (in rank order,
     * wrapping) on another node; -1 where all ranks share one node.
     */
    static int[] buddies(List<String> nodeOfRank) {
        int n = nodeOfRank.size();
        int[] buddy = new int[n];
        for (int r = 0; r < n; r++) {
            buddy[r] = -1;
            for (int d = 1; d < n; d++) {
                int b = (r + d) % n;
                if (!Objects.equals(nodeOfRank.get(b), nodeOfRank.get(r))) {
                    buddy[r] = b;
                    break;
                }
            }
        }
        return buddy;
    }
}
