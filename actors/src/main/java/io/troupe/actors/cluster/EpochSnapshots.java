package io.troupe.actors.cluster;

import io.troupe.actors.cluster.snapshot.ShardSnapshots;
import io.troupe.actors.cluster.snapshot.SnapshotBuffer;
import io.troupe.actors.cluster.snapshot.SnapshotException;
import io.troupe.actors.cluster.snapshot.SnapshotExchange;
import io.troupe.actors.engine.StageWorker;
import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.transport.JobIdentity;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * One rank's in-memory snapshots for one epoch, as its {@link SnapshotPlan} says: the rank's binding to the worker's
 * {@link SnapshotExchange}, the capture of its shard at each commit (sent to its buddy), its restore from memory, and
 * the drop when the coordinator finds a node cannot hold the snapshots. On a GPU too the shard's tensors go straight
 * between the device and a snapshot's slot, one copy each way ({@link ShardSnapshots}), with no host copy of them:
 * it holds no memory of its own; the exchange is the worker's and outlives the epoch.
 *
 * <p>Threading: the worker's device thread, like the {@link EpochWiring} that holds it; {@link #unbind} from any
 * thread (the epoch's abort), and {@link #snapshotBytes} from any thread the built wiring is handed to. A restore
 * from memory waiting for a buddy's copy is stopped through
 * {@link SnapshotExchange#abortWaits}.
 */
final class EpochSnapshots {
    /** How long a rank restoring from memory waits for the copy of its snapshot a buddy sends it. */
    private static final long RESTORE_WAIT_NS = TimeUnit.SECONDS.toNanos(15);

    private final SnapshotExchange exchange;
    private final SnapshotPlan plan;
    private final JobIdentity job;
    private final int rank;
    private final StageWorker stage;
    private final CpuDevice scratch;
    /**
     * Whether each commit snapshots this rank's shard: the plan's, until the coordinator finds after the build that
     * a node cannot hold the snapshots ({@link #drop}).
     */
    private boolean snapshotting;
    /** Bytes of this rank's snapshot as its chunks were built ({@link #bind}). */
    private long snapshotBytes;
    /**
     * Rank {@code rank}'s snapshots of {@code stage} under {@code plan}, not bound yet; {@code scratch} is the CPU
     * device a GPU rank's snapshots report the slots' memory on (it allocates nothing for them).
     */
    EpochSnapshots(SnapshotExchange exchange, SnapshotPlan plan, JobIdentity job, int rank, StageWorker stage,
                   CpuDevice scratch) {
        this.exchange = exchange;
        this.plan = plan;
        this.job = job;
        this.rank = rank;
        this.stage = stage;
        this.scratch = scratch;
        this.snapshotting = plan.enabled();
    }

    /**
     * Once the stage's chunks and optimizers are built (under ZeRO, sharded): records the snapshot's size and, when
     * the plan takes snapshots, binds this rank to the exchange.
     */
    void bind() {
        this.snapshotBytes = lengthBytes(stage);
        if (plan.enabled()) {
            exchange.bind(job, rank, plan.buddyOf(), plan.endpoints(), plan.pieceShiftOf());
        }
    }

    /** Whether the epoch begins with a restore from memory ({@link #restoreFromMemory}). */
    boolean restoresFromMemory() {
        return plan.restoresFromMemory();
    }

    /**
     * This rank's shard as the snapshots hold it: per chunk its parameters, moments and optimizer step, the
     * tensors themselves (on a GPU, device tensors: a capture copies them straight into the slot, a restore
     * straight back).
     */
    private List<ShardSnapshots.ChunkState> chunkStates() {
        List<ShardSnapshots.ChunkState> out = new ArrayList<>(stage.chunks());
        for (int c = 0; c < stage.chunks(); c++) {
            var opt = stage.optimizer(c);
            out.add(new ShardSnapshots.ChunkState(stage.chunk(c).params(), opt.firstMoment(), opt.secondMoment(),
                opt.stepCount(), scratch));
        }
        return out;
    }

    /**
     * Step {@code step} is done here: with snapshots, this rank's shard is snapshotted (as the state
     * after {@code step + 1} steps) and sent to its buddy, and {@code report} runs once the copies
     * this rank keeps for others have arrived; without, {@code report} runs now.
     */
    void commit(long step, Runnable report) {
        if (!snapshotting) {
            report.run();
            return;
        }
        exchange.afterStep(step + 1, chunkStates(), report);
    }

    /**
     * Bytes of this rank's snapshot, whether or not the epoch takes snapshots: per chunk its parameters and the
     * part of both moments its optimizer holds (under ZeRO the segments of its gradient buckets it owns), as
     * {@link ShardSnapshots#capture} writes them after each commit.
     */
    long snapshotBytes() {
        return snapshotBytes;
    }

    /** {@link #snapshotBytes()} of {@code w}'s chunks and optimizers as built (the tensors' sizes alone). */
    private static long lengthBytes(StageWorker w) {
        long params = 0;
        long stateElements = 0;
        for (int c = 0; c < w.chunks(); c++) {
            params += w.chunk(c).params().numel();
            stateElements += w.optimizer(c).firstMoment().numel();
        }
        return ShardSnapshots.lengthBytes(w.chunks(), params, stateElements);
    }

    /**
     * The epoch keeps no in-memory snapshots after all (before its first step): its commits capture none and the
     * exchange takes no copies for it.
     */
    void drop() {
        snapshotting = false;
        exchange.unbind(job);
    }

    /** The epoch ended (any thread): the exchange takes no more copies for it. */
    void unbind() {
        exchange.unbind(job);
    }

    /**
     * Restores this rank from the in-memory snapshots of the plan's step: its own, or the one the
     * rank that holds it (a buddy's copy, or a data-parallel replica's own) sends over the data
     * plane; first sends the snapshots this worker holds for other ranks.
     *
     * @throws IllegalStateException "memory restore failed: ..." naming what is missing or damaged
     */
    void restoreFromMemory() {
        long step = plan.restoreStep();
        int[] holder = plan.holderOf();
        int[] source = plan.sourceOf();
        try {
            for (int k = 0; k < holder.length; k++) {
                if (holder[k] == rank && k != rank) {
                    exchange.sendCopy(step, source[k], k);
                }
            }
            SnapshotBuffer b = holder[rank] == rank ? exchange.find(job.jobId(), source[rank], step)
                : exchange.awaitCopy(job, source[rank], step, RESTORE_WAIT_NS);
            try {
                long[] optimizerSteps = ShardSnapshots.restore(b, chunkStates());
                for (int c = 0; c < stage.chunks(); c++) {
                    stage.optimizer(c).setStepCount(optimizerSteps[c]);
                }
            } finally {
                exchange.release(b);
            }
        } catch (SnapshotException e) {
            throw new IllegalStateException(EpochWiring.MEMORY_RESTORE_FAILED + e.getMessage(), e);
        }
    }
}
