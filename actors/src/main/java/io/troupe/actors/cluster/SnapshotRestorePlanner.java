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
    /**
     * Whether a rank with no replica may be restored from its buddy's copy (on; a switch kept so the
     * disk path can be forced while a restore problem is chased).
     */
    static final boolean RESTORE_FROM_BUDDY_COPIES = true;

    private SnapshotRestorePlanner() {
    }

    /**
     * A restore from memory: the workers in rank order (survivors keep their rank, a replacement
     * takes a lost one's) and, per rank, the rank that holds its snapshot; or, when {@code ranks}
     * is null, why the disk checkpoint is used instead.
     */
    record Decision<W>(List<W> ranks, long step, int[] holderOf, int[] sourceOf, String reason) {
        boolean fromMemory() {
            return ranks != null;
        }

        static <W> Decision<W> disk(String reason) {
            return new Decision<>(null, -1, new int[0], new int[0], reason);
        }
    }

    /**
     * @param step        the last committed step (steps committed so far) the snapshots must hold
     * @param diskStep    the step of the last disk checkpoint (nothing to gain below or at it)
     * @param oldRanks    the previous epoch's workers by rank (null where unknown)
     * @param sameLayout  whether the next epoch runs the previous epoch's layout
     * @param candidates  the workers that may take a rank, in preference order
     * @param worldSize   ranks of the next epoch
     * @param stateClass  per rank, its state class: ranks of one class hold bitwise the same shard (the
     *                    data-parallel replicas of a stage without ZeRO), so any one's snapshot restores another
     * @param inventories per worker, the snapshots it holds of this job, pairs {rank, step}
     */
    static <W> Decision<W> plan(long step, long diskStep, List<W> oldRanks, boolean sameLayout, List<W> candidates,
                                int worldSize, int[] stateClass, Map<W, long[]> inventories) {
        if (step <= diskStep) {
            return Decision.disk("nothing committed since the disk checkpoint of step " + diskStep);
        }
        if (!sameLayout || oldRanks.size() != worldSize) {
            return Decision.disk("the layout changes (" + oldRanks.size() + " ranks before, " + worldSize
                + " now): a snapshot "
                + "restores only into its own rank");
        }
        List<W> ranks = new ArrayList<>();
        List<W> spare = new ArrayList<>(candidates);
        for (W w : oldRanks) { // null: a rank whose worker is unknown (a new coordinator learned none for it)
            boolean kept = w != null && candidates.contains(w);
            ranks.add(kept ? w : null);
            if (kept) {
                spare.remove(w);
            }
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
        int[] sourceOf = new int[worldSize];
        for (int k = 0; k < worldSize; k++) {
            holderOf[k] = -1;
            if (holds(inventories.get(ranks.get(k)), k, step)) {
                holderOf[k] = k;
                sourceOf[k] = k;
                continue;
            }
            // another worker's snapshot of this rank (its buddy's copy), else of a replica of it
            for (int pass = RESTORE_FROM_BUDDY_COPIES ? 0 : 1; pass < 2 && holderOf[k] < 0; pass++) {
                for (int j = 0; j < worldSize && holderOf[k] < 0; j++) {
                    long[] inv = inventories.get(ranks.get(j));
                    for (int src = 0; src < worldSize && holderOf[k] < 0; src++) {
                        boolean eligible = pass == 0 ? src == k : src != k && stateClass[src] == stateClass[k];
                        if (eligible && holds(inv, src, step)) {
                            holderOf[k] = j;
                            sourceOf[k] = src;
                        }
                    }
                }
            }
            if (holderOf[k] < 0) {
                return Decision.disk("no worker holds rank " + k + "'s snapshot of step " + step
                    + (RESTORE_FROM_BUDDY_COPIES ? " (it and its copies were lost, or snapshots are off)"
                        : " but as a buddy's copy, which this build does not restore from (it has no replica)"));
            }
        }
        return new Decision<>(List.copyOf(ranks), step, holderOf, sourceOf, "");
    }

    /**
     * The newest step whose snapshot exists for every rank of a {@code worldSize}-rank layout among
     * {@code inventories}: each rank's own, or its buddy's copy, or the snapshot of a rank of its
     * state class. Such a step is committed whatever the coordinator saw of it: every rank applied
     * its optimizer step and snapshotted it, and a step's result is a function of the step. A new
     * coordinator incarnation, which never saw the commits of the one it replaced, restores this step.
     *
     * @return the step, or -1 when no step is held for every rank
     */
    static <W> long newestCovered(int worldSize, int[] stateClass, Map<W, long[]> inventories) {
        if (stateClass.length != worldSize) {
            throw new IllegalArgumentException("one state class per rank: worldSize=" + worldSize + ", classes="
                + stateClass.length);
        }
        java.util.TreeSet<Long> steps = new java.util.TreeSet<>();
        for (long[] inv : inventories.values()) {
            for (int i = 0; i + 1 < inv.length; i += 2) {
                steps.add(inv[i + 1]);
            }
        }
        for (Long step : steps.descendingSet()) {
            boolean all = worldSize > 0;
            for (int k = 0; k < worldSize && all; k++) {
                all = heldAnywhere(inventories, k, step, stateClass);
            }
            if (all) {
                return step;
            }
        }
        return -1;
    }

    private static <W> boolean heldAnywhere(Map<W, long[]> inventories, int rank, long step, int[] stateClass) {
        for (long[] inv : inventories.values()) {
            for (int i = 0; i + 1 < inv.length; i += 2) {
                int src = (int) inv[i];
                if (inv[i + 1] == step && src >= 0 && src < stateClass.length
                    && (src == rank || stateClass[src] == stateClass[rank])) {
                    return true;
                }
            }
        }
        return false;
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
     * Buddies for ranks on {@code nodeOfRank}: none (-1) for a rank with a rank of its state class
     * on another node (that replica's own snapshot is its copy, at no transfer); else the next rank
     * (in rank order, wrapping) on another node; -1 where all ranks share one node.
     */
    static int[] buddies(List<String> nodeOfRank, int[] stateClass) {
        int[] buddy = buddies(nodeOfRank);
        for (int r = 0; r < buddy.length; r++) {
            for (int o = 0; o < buddy.length; o++) {
                if (o != r && stateClass[o] == stateClass[r] && !Objects.equals(nodeOfRank.get(o), nodeOfRank.get(r))) {
                    buddy[r] = -1;
                    break;
                }
            }
        }
        return buddy;
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
