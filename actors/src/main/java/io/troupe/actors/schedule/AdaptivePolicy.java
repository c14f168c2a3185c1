package io.troupe.actors.schedule;

import java.util.BitSet;
import java.util.function.IntToLongFunction;

/**
 * The adaptive policy: no fixed order, each rank decides on the spot from what has arrived.
 *
 * <ol>
 *   <li>With a deadline set: once the pending weight gradients would take until the deadline
 *       ({@code now + pending * weightEstimateUs >= deadlineUs}), run W first, so W never pushes the
 *       step end past the deadline.</li>
 *   <li>B, oldest micro-batch first: it unblocks the previous stage and leads to freeing memory.
 *       One exception keeps the pipe fed: while fewer than {@code p - rank} of this rank's forwards
 *       are in flight (F done, B not yet), an admissible F goes before B, as 1F1B's warm-up does.
 *       Pure B-first starves the later stages: with p=4, m=8, F=B=W it takes 29 units against
 *       ZB-H1's 27; with the lead it takes 27.</li>
 *   <li>F, oldest first, but a new micro-batch is admitted on a rank only while the activation bytes
 *       it holds stay within {@code activationBudgetBytes} (bytes, not counts: micro-batches may
 *       differ in length). Admission reserves the micro-batch's bytes for all v chunks at its chunk-0
 *       forward; each chunk's W (or BW) releases its share. A rank holding nothing always admits, so
 *       an oversized micro-batch cannot stall the step.</li>
 *   <li>W, oldest first, as filler whenever nothing above can start.</li>
 * </ol>
 * B and W are always split. With a budget of p micro-batches it holds no more than 1F1B's peak.
 */
public final class AdaptivePolicy implements SchedulePolicy {
    private final PipelineShape shape;
    private final IntToLongFunction activationBytesOf;
    private final long activationBudgetBytes;
    private final double deadlineUs;
    private final double weightEstimateUs;

    /**
     * @param shape                 ranks, virtual stages, micro-batches
     * @param activationBytesOf     activation bytes of micro-batch i on one rank, all chunks together
     * @param activationBudgetBytes the most activation bytes one rank may hold, > 0
     * @param deadlineUs            time by which every W should be done, or
     *                              {@code Double.POSITIVE_INFINITY} for none
     * @param weightEstimateUs      expected time of one W on one chunk, >= 0 (used with the deadline)
     */
    public AdaptivePolicy(PipelineShape shape, IntToLongFunction activationBytesOf, long activationBudgetBytes,
                          double deadlineUs, double weightEstimateUs) {
        if (activationBudgetBytes <= 0) {
            throw new IllegalArgumentException(
                    "activation budget must be > 0 bytes: activationBudgetBytes=" + activationBudgetBytes);
        }
        if (Double.isNaN(deadlineUs)) {
            throw new IllegalArgumentException("deadline must be a time or +infinity: deadlineUs=" + deadlineUs);
        }
        if (!(weightEstimateUs >= 0.0)) {
            throw new IllegalArgumentException("weight estimate must be >= 0: weightEstimateUs=" + weightEstimateUs);
        }
        this.shape = shape;
        this.activationBytesOf = activationBytesOf;
        this.activationBudgetBytes = activationBudgetBytes;
        this.deadlineUs = deadlineUs;
        this.weightEstimateUs = weightEstimateUs;
    }

    /**
     * The adaptive policy for a cost model: activation sizes from {@code cost}, no deadline.
     *
     * @param activationBudgetBytes per rank; {@code p * cost.activationBytes(0)} holds 1F1B's peak
     */
    public static AdaptivePolicy forCosts(PipelineShape shape, CostModel cost, long activationBudgetBytes) {
        return new AdaptivePolicy(shape, cost::activationBytes, activationBudgetBytes, Double.POSITIVE_INFINITY, 0.0);
    }

    /** A copy with a deadline for the weight gradients. */
    public AdaptivePolicy withDeadline(double deadlineUs, double weightEstimateUs) {
        return new AdaptivePolicy(shape, activationBytesOf, activationBudgetBytes, deadlineUs, weightEstimateUs);
    }

    @Override
    public String name() {
        return "adaptive";
    }

    /** Orders follow arrival times, which differ between the members of a stage. */
    @Override
    public boolean fixedOrder() {
        return false;
    }

    /** A follower of this policy's leader: B and W split, so 3 actions per micro-batch and chunk. */
    @Override
    public FollowedPolicy newFollower(int rank) {
        if (rank < 0 || rank >= shape.stages()) {
            throw new IllegalArgumentException("rank out of range: rank=" + rank + ", stages=" + shape.stages());
        }
        return new FollowedPolicy(shape, rank, 3 * shape.microbatches() * shape.virtualStages());
    }

    @Override
    public PipelineShape shape() {
        return shape;
    }

    public long activationBudgetBytes() {
        return activationBudgetBytes;
    }

    @Override
    public StagePolicy newStage(int rank) {
        if (rank < 0 || rank >= shape.stages()) {
            throw new IllegalArgumentException("rank out of range: rank=" + rank + ", stages=" + shape.stages());
        }
        return new Stage(rank);
    }

    /**
     * One rank's ready sets. Keys order work oldest micro-batch first and, within one micro-batch, the
     * later chunk first: {@code key = mb * v + (v - 1 - chunk)}.
     */
    private final class Stage implements StagePolicy {
        private final int rank;
        private final int v;
        private final StageProgress progress;
        private final BitSet readyF = new BitSet();
        private final BitSet readyB = new BitSet();
        private final BitSet pendingW = new BitSet();
        private int pendingCount;
        /** Forwards done whose B has not run yet. */
        private int forwardsInFlight;
        /** p - rank: the forwards needed downstream to cover one round trip to the last stage and back. */
        private final int forwardLead;
        private int remaining;
        private long reservedBytes;
        private boolean running;
        private boolean memoryBlocked;

        Stage(int rank) {
            this.rank = rank;
            this.v = shape.virtualStages();
            this.progress = new StageProgress(shape, rank);
            this.remaining = 3 * shape.microbatches() * v;
            this.forwardLead = shape.stages() - rank;
            if (rank == 0) {
                for (int mb = 0; mb < shape.microbatches(); mb++) {
                    readyF.set(key(mb, 0));
                }
            }
        }

        private int key(int mb, int chunk) {
            return mb * v + (v - 1 - chunk);
        }

        private Action action(ActionType type, int key) {
            return new Action(type, key / v, v - 1 - key % v);
        }

        @Override
        public void onInputArrived(int microbatch, int virtualStage) {
            progress.inputArrived(microbatch, virtualStage);
            readyF.set(key(microbatch, virtualStage));
        }

        @Override
        public void onGradArrived(int microbatch, int virtualStage) {
            progress.gradArrived(microbatch, virtualStage);
            if (progress.hasGrad(microbatch, virtualStage)) {
                readyB.set(key(microbatch, virtualStage));
            }
        }

        @Override
        public void onActionFinished(Action action) {
            running = false;
            remaining--;
            progress.finished(action);
            int mb = action.microbatch();
            int chunk = action.virtualStage();
            switch (action.type()) {
                case F -> {
                    forwardsInFlight++;
                    if (progress.hasGrad(mb, chunk)) {
                        readyB.set(key(mb, chunk));
                    }
                }
                case B -> {
                    forwardsInFlight--;
                    pendingW.set(key(mb, chunk));
                    pendingCount++;
                }
                case W -> reservedBytes -= activationBytesOf.applyAsLong(mb) / v;
                case BW -> throw new IllegalStateException("adaptive policy never runs BW: action=" + action);
            }
        }

        @Override
        public Action next(double nowUs) {
            memoryBlocked = false;
            if (running) {
                return null;
            }
            Action chosen = choose(nowUs);
            if (chosen != null) {
                running = true;
            }
            return chosen;
        }

        private Action choose(double nowUs) {
            if (pendingCount > 0 && nowUs + pendingCount * weightEstimateUs >= deadlineUs) {
                return takeW();
            }
            int b = readyB.nextSetBit(0);
            if (b >= 0 && forwardsInFlight >= forwardLead) {
                readyB.clear(b);
                return action(ActionType.B, b);
            }
            boolean refused = false;
            for (int f = readyF.nextSetBit(0); f >= 0; f = readyF.nextSetBit(f + 1)) {
                Action forward = action(ActionType.F, f);
                if (forward.virtualStage() == 0) {
                    if (refused) {
                        continue; // admit new micro-batches in order, so none starves
                    }
                    long bytes = activationBytesOf.applyAsLong(forward.microbatch()) / v * v;
                    if (reservedBytes > 0 && reservedBytes + bytes > activationBudgetBytes) {
                        refused = true;
                        if (v == 1) {
                            break;
                        }
                        continue;
                    }
                    reservedBytes += bytes;
                }
                readyF.clear(f);
                return forward;
            }
            if (b >= 0) {
                readyB.clear(b);
                return action(ActionType.B, b);
            }
            if (pendingCount > 0) {
                return takeW();
            }
            memoryBlocked = refused;
            return null;
        }

        private Action takeW() {
            int w = pendingW.nextSetBit(0);
            pendingW.clear(w);
            pendingCount--;
            return action(ActionType.W, w);
        }

        @Override
        public boolean isDone() {
            return !running && remaining == 0;
        }

        @Override
        public Action awaited() {
            return null;
        }

        @Override
        public boolean blockedByMemory() {
            return memoryBlocked;
        }

        @Override
        public String toString() {
            return "adaptive rank " + rank + " remaining=" + remaining + " reservedBytes=" + reservedBytes;
        }
    }
}
