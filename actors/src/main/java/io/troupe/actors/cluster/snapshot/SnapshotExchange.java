package io.troupe.actors.cluster.snapshot;

import io.troupe.collectives.CollectiveAgent;
import io.troupe.runtime.transport.FrameKind;
import io.troupe.runtime.transport.JobIdentity;
import io.troupe.runtime.transport.ReceiveSlot;
import io.troupe.runtime.transport.TensorReceiverAgent;
import io.troupe.runtime.transport.TransportNode;
import io.troupe.runtime.transport.WorkerTransport;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.agrona.concurrent.IdleStrategy;

/**
 * A worker's in-memory snapshots and their buddy copies on the Aeron data plane: its own shard's
 * snapshot at every commit (double-buffered), sent whole to its buddy rank on another node, and the
 * copies other ranks sent it. A stream of its own (its own receiver and senders), so a snapshot
 * never shares a publication with activations or gradient buckets; the send runs on a thread of
 * its own and overlaps the next step's compute.
 *
 * <p>Commit rule: a rank reports step {@code s} done only once it holds the copies of step
 * {@code s} of every rank that sends it theirs; a step is committed when every rank reported it,
 * so every committed step is in memory twice, on two nodes.
 *
 * <p>Retention rule ({@link SnapshotRetention}): a rank's own store keeps the snapshot of the last
 * committed step and every later one of its epoch, and a capture waits for a commit ({@link #committed})
 * rather than overwrite one of them; its buddy keeps the copies by the same rule.
 *
 * <p>Frames: a {@link SnapshotDescriptor} snapshot travels in pieces of at most a quarter of the
 * receiver's receive budget ({@link SnapshotPieces#pieceShift(long)}: each worker advertises its own, and the plan
 * gives every sender its receivers'), so a snapshot of any size fits a receiver's reassembly memory
 * one piece at a time, whatever the budgets of the other nodes: kind {@link FrameKind#CONTROL} on this stream, the
 * frame's step the snapshot's length, its tensor key the rank whose shard it is, the piece size, count and index
 * ({@link SnapshotPieces#pieceKey}). The receiver copies each piece into the copy's slot at its offset.
 *
 * <p>Threading: {@link #bind}, {@link #afterStep}, {@link #sendCopy}, {@link #awaitCopy} from the
 * worker's device thread; the receiver on the exchange's agent thread; sends on the send thread
 * ({@link SnapshotSender}).
 */
public final class SnapshotExchange implements TensorReceiverAgent.Listener, AutoCloseable {
    /** How long a capture waits for a slot still being sent (the send of two steps ago). */
    private static final long SLOT_WAIT_NS = TimeUnit.SECONDS.toNanos(30);
    /** log2 of the smallest piece a snapshot travels in: 4 KiB. */
    public static final int MIN_PIECE_SHIFT = 12;
    /** log2 of the largest piece a snapshot travels in: 64 MiB. */
    public static final int MAX_PIECE_SHIFT = 26;
    /**
     * Whether {@code shift} names a piece size a snapshot may travel in ({@value #MIN_PIECE_SHIFT} to
     * {@value #MAX_PIECE_SHIFT}).
     */
    public static boolean isPieceShift(int shift) {
        return shift >= MIN_PIECE_SHIFT && shift <= MAX_PIECE_SHIFT;
    }

    private final int pieceShift;

    /** One epoch's binding: who this worker is, where its snapshot goes, and each rank's piece size. */
    record Binding(JobIdentity job, int rank, int buddy, int[] sources, List<String> endpoints,
                   int[] pieceShifts) {
    }

    private record Pending(long step, Runnable report) {
    }

    private final CollectiveAgent agent;
    private final WorkerTransport transport;
    private final SnapshotSender sender;
    private final SnapshotPieces pieces;
    private final int segmentShift;
    private final SnapshotStore own;
    private final Map<Integer, SnapshotStore> copies = new ConcurrentHashMap<>();
    private final Map<Integer, Long> arrived = new ConcurrentHashMap<>();
    private final ArrayDeque<Pending> pending = new ArrayDeque<>();
    private final Object reportLock = new Object();
    private volatile Binding binding;
    /** The current binding's last committed step (a snapshot's step: steps done), -1 until told. */
    private volatile long committedStep = -1;

    /**
     * The newest epoch a worker was told is over ({@link #abortWaits}): the copy waits of it and of the older
     * epochs of its job end at once; null: none. Written by one thread (the worker actor's).
     */
    private volatile JobIdentity abortedBy;

    /** Opens the exchange's stream on {@code node}, its receiver on an agent thread of its own. */
    public SnapshotExchange(TransportNode node, String name, Consumer<String> log) {
        this(node, name, log, SnapshotBuffer.SEGMENT_SHIFT);
    }

    /** As the public constructor, with slots made of segments of {@code 2^segmentShift} bytes (to test the seams). */
    SnapshotExchange(TransportNode node, String name, Consumer<String> log, int segmentShift) {
        this.segmentShift = segmentShift;
        this.own = new SnapshotStore("own snapshots", segmentShift);
        this.agent = CollectiveAgent.open(node, name, -1, 0, this, t -> log.accept("snapshot data plane error: " + t));
        this.transport = agent.worker();
        this.pieces = new SnapshotPieces(this, transport, log);
        this.pieceShift = SnapshotPieces.pieceShift(node.settings().receiveBudgetBytes());
        agent.start(new BackoffIdleStrategy(64, 16, 1_000, 1_000_000));
        this.sender = new SnapshotSender(this, pieces, name, log);
    }

    /** Where peers send their snapshots to this worker (a transport endpoint's string form). */
    public String endpoint() {
        return transport.endpoint().toString();
    }

    /**
     * log2 of the piece size this worker's receiver takes snapshots in (a quarter of its receive budget, at most
     * 64 MiB).
     */
    public int pieceShift() {
        return pieceShift;
    }

    /**
     * Binds the exchange to rank {@code rank} of {@code job}'s epoch.
     *
     * @param buddyOf   for each rank, the rank that keeps a copy of its snapshots (-1: none)
     * @param endpoints each rank's {@link #endpoint()}
     * @param pieceShifts each rank's {@link #pieceShift()}: what is sent to a rank travels in its pieces
     */
    public void bind(JobIdentity job, int rank, int[] buddyOf, List<String> endpoints, int[] pieceShifts) {
        if (pieceShifts.length != buddyOf.length || endpoints.size() != buddyOf.length) {
            throw new IllegalArgumentException("a buddy, an endpoint and a piece size per rank: buddies="
                + buddyOf.length + ", endpoints=" + endpoints.size() + ", piece sizes=" + pieceShifts.length);
        }
        List<Integer> sources = new ArrayList<>();
        for (int r = 0; r < buddyOf.length; r++) {
            if (buddyOf[r] == rank && r != rank) {
                sources.add(r);
            }
        }
        synchronized (reportLock) {
            pending.clear();
            arrived.clear();
            transport.assign(rank, job);
            committedStep = -1;
            binding = new Binding(job, rank, buddyOf[rank], sources.stream().mapToInt(Integer::intValue).toArray(),
                List.copyOf(endpoints), pieceShifts.clone());
        }
    }

    /**
     * Lets the receiver take frames of rank {@code rank} of {@code job}'s epoch at once (any thread),
     * before the epoch is built and bound: a snapshot sent for a restore may come before that.
     */
    public void prepare(JobIdentity job, int rank) {
        transport.assign(rank, job);
    }

    /** The epoch ended: reports still waiting for copies are dropped, sends in flight given up. */
    public void unbind() {
        synchronized (reportLock) {
            pending.clear();
            binding = null;
        }
        own.wake();
    }

    /** As {@link #unbind()} when the exchange is still bound to {@code job} (a newer epoch's binding stays). */
    public void unbind(JobIdentity job) {
        synchronized (reportLock) {
            Binding b = binding;
            if (b != null && b.job().equals(job)) {
                pending.clear();
                binding = null;
            }
        }
        own.wake();
    }

    /**
     * The coordinator committed {@code job}'s steps before {@code step} (any thread; a snapshot of
     * step {@code step} restores them): the own snapshots of older steps may be overwritten now.
     * Ignored unless the exchange is bound to {@code job}; never moves back.
     *
     * <p>The copies this worker keeps of ranks that are not its sources in this epoch (kept under an
     * older plan, or sent to it for a restore) are dropped at the epoch's second commit: the first only
     * confirms the step the epoch started from, which a fault before the next commit restores again,
     * perhaps from those very copies; once a step of the epoch commits, every rank's snapshot of it is
     * held under this epoch's plan and nothing restores from them. Their slots are freed with the last
     * send or assembly still using them.
     */
    public void committed(JobIdentity job, long step) {
        Binding b = binding;
        if (b == null || !b.job().equals(job) || step <= committedStep) {
            return;
        }
        synchronized (reportLock) {
            if (binding == b && step > committedStep) {
                if (committedStep >= 0) {
                    copies.keySet().removeIf(r -> !isSource(b, r));
                }
                committedStep = step;
            }
        }
        own.wake();
    }

    private static boolean isSource(Binding b, int rank) {
        for (int s : b.sources()) {
            if (s == rank) {
                return true;
            }
        }
        return false;
    }

    /** The ranks whose copies this worker keeps slots for (a dropped rank's slots are no longer counted). */
    public List<Integer> copyRanks() {
        return copies.keySet().stream().sorted().toList();
    }

    /** The last committed step this exchange was told of in its current binding (-1: none yet). */
    public long committedStep() {
        return committedStep;
    }

    /** The current binding (null: none). */
    Binding binding() {
        return binding;
    }

    public SnapshotStore own() {
        return own;
    }

    /** The copies of rank {@code rank}'s snapshots this worker holds. */
    public SnapshotStore copiesOf(int rank) {
        return copies.computeIfAbsent(rank, r -> new SnapshotStore("copies of rank " + r, segmentShift));
    }

    /**
     * Direct memory this worker's snapshot slots hold now (any thread): its own store's and those of the copies it
     * keeps. A slot is reused by whatever snapshot this worker writes next, of this job or the next (grown when a
     * larger one comes, the old buffers then garbage the JDK reclaims when an allocation needs them), and the copies
     * of ranks a new plan gives it no longer are dropped at that epoch's second commit ({@link #committed}).
     */
    public long heldBytes() {
        long held = own.heldBytes();
        for (SnapshotStore s : copies.values()) {
            held += s.heldBytes();
        }
        return held;
    }

    /** Snapshot bytes this worker sent (its own and restore copies). */
    public long sentBytes() {
        return pieces.sentBytes();
    }

    /**
     * After a step: snapshots {@code chunks} as step {@code step} (steps committed once this one is),
     * sends it to the buddy (in the background), and runs {@code report} once the copies of this step
     * from every rank this one keeps copies of have arrived (at once when they already have).
     */
    public void afterStep(long step, List<ShardSnapshots.ChunkState> chunks, Runnable report) {
        Binding b = binding;
        if (b == null) {
            return;
        }
        long t0 = System.nanoTime();
        SnapshotBuffer snap = ShardSnapshots.capture(own, b.job().jobId(), b.rank(), b.job().epoch(), step, chunks,
            SLOT_WAIT_NS, held -> live(b, held), () -> binding != b);
        long waitNs = own.lastWaitNs();
        SnapshotCounters.taken(System.nanoTime() - t0 - waitNs, waitNs);
        if (b.buddy() >= 0) {
            sender.send(b, own.pin(snap), b.buddy());
        }
        synchronized (reportLock) {
            pending.addLast(new Pending(step, report));
            flushLocked(b);
        }
    }

    /**
     * Whether own snapshot {@code held} must be kept in binding {@code b}: it is the rank's snapshot
     * of the last committed step (of any epoch: a restore took it, and takes it again if this epoch
     * fails before its first commit), or a later one of this epoch (it may still be committed).
     * Before the first commit is known every snapshot of the rank's job is kept.
     */
    private boolean live(Binding b, SnapshotBuffer held) {
        return SnapshotRetention.live(b.job(), b.rank(), committedStep, held);
    }

    /**
     * Agent thread: the copy of rank {@code rank}'s snapshot of {@code step}, taken in epoch {@code epoch} of job
     * {@code jobId}, arrived whole; reports of the current binding waiting for it run.
     */
    void arrived(long epoch, int jobId, int rank, long step) {
        synchronized (reportLock) {
            Binding bd = binding;
            if (bd != null && epoch == bd.job().epoch() && jobId == bd.job().jobId()) {
                arrived.merge(rank, step, Math::max);
                flushLocked(bd);
            }
        }
    }

    private void flushLocked(Binding b) {
        if (binding != b) {
            return;
        }
        long copied = Long.MAX_VALUE;
        for (int s : b.sources()) {
            copied = Math.min(copied, arrived.getOrDefault(s, -1L));
        }
        while (!pending.isEmpty() && pending.peekFirst().step() <= copied) {
            pending.pollFirst().report().run();
        }
    }

    /**
     * Restore: sends the snapshot of old rank {@code rank} at {@code step} (this worker's own or a
     * copy it keeps) to new rank {@code toRank}.
     *
     * @throws SnapshotException when this worker holds no valid such snapshot
     */
    public void sendCopy(long step, int rank, int toRank) {
        Binding b = binding;
        if (b == null) {
            throw new SnapshotException("cannot send rank " + rank + "'s snapshot of step " + step
                + ": the exchange is not bound");
        }
        SnapshotBuffer snap = find(b.job().jobId(), rank, step);
        sender.send(b, snap, toRank);
    }

    /**
     * The valid snapshot of {@code rank} at {@code step} held here (own or a copy), pinned
     * (unpin it through {@link #release}).
     *
     * @throws SnapshotException naming what each store holds instead, or a CRC mismatch
     */
    public SnapshotBuffer find(int jobId, int rank, long step) {
        SnapshotException first;
        try {
            return own.find(jobId, rank, step);
        } catch (SnapshotException e) {
            first = e;
        }
        try {
            return copiesOf(rank).find(jobId, rank, step);
        } catch (SnapshotException e) {
            throw new SnapshotException(first.getMessage() + "; " + e.getMessage());
        }
    }

    /** Unpins a snapshot {@link #find} or {@link #awaitCopy} returned. */
    public void release(SnapshotBuffer snap) {
        if (own.holds(snap)) {
            own.unpin(snap);
            return;
        }
        for (SnapshotStore s : copies.values()) {
            if (s.holds(snap)) {
                s.unpin(snap);
                return;
            }
        }
        // its store was dropped (copies kept under an older plan): the slot goes with its last user
    }

    /**
     * Restore, while building epoch {@code building}: waits up to {@code timeoutNs} for a valid copy
     * of old rank {@code rank}'s snapshot at {@code step} to arrive; returned pinned. The wait ends at
     * once when {@link #abortWaits} ended {@code building} (it named this epoch of the job or a newer
     * one): the epoch is over before it started, and its worker answers the abort without waiting.
     * An abort that ended only older epochs of the job, or another job's, leaves the wait alone.
     *
     * @throws SnapshotException naming what arrived instead when the time runs out, or the abort
     */
    public SnapshotBuffer awaitCopy(JobIdentity building, int rank, long step, long timeoutNs) {
        long deadlineNs = System.nanoTime() + timeoutNs;
        IdleStrategy idle = new BackoffIdleStrategy(1, 1, 10_000, 1_000_000);
        while (true) {
            try {
                return copiesOf(rank).find(building.jobId(), rank, step);
            } catch (SnapshotException e) {
                JobIdentity a = abortedBy;
                if (ends(a, building)) {
                    throw new SnapshotException("the wait for rank " + rank + "'s snapshot of step " + step + " in "
                        + building + " ended by the abort of " + a);
                }
                if (System.nanoTime() > deadlineNs) {
                    throw new SnapshotException("no copy of rank " + rank + "'s snapshot of step " + step
                        + " arrived within " + TimeUnit.NANOSECONDS.toMillis(timeoutNs) + " ms: " + e.getMessage());
                }
            }
            idle.idle();
        }
    }

    /** Whether an abort that ended epoch {@code ended} (null: none) ends {@code building}: same job, not newer. */
    private static boolean ends(JobIdentity ended, JobIdentity building) {
        return ended != null && ended.jobId() == building.jobId() && building.epoch() <= ended.epoch();
    }

    /**
     * Epoch {@code ended} and every older epoch of its job are over (a worker told to abort while it
     * builds one): their copy waits end, now and later. A newer epoch of the job is left alone, so an
     * abort that came before that epoch's assignment never ends its build. An older epoch of the job
     * than one already ended changes nothing. Called from one thread (the worker actor's).
     */
    public void abortWaits(JobIdentity ended) {
        JobIdentity a = abortedBy;
        if (!ends(a, ended)) {
            abortedBy = ended;
        }
    }

    /** The snapshots held of job {@code jobId}: each entry {rank, step}, own ones first. */
    public List<long[]> inventory(int jobId) {
        List<long[]> out = new ArrayList<>();
        for (int rank : own.ranks(jobId)) {
            for (long step : own.steps(jobId, rank)) {
                out.add(new long[] {rank, step});
            }
        }
        for (Map.Entry<Integer, SnapshotStore> e : copies.entrySet()) {
            for (long step : e.getValue().steps(jobId, e.getKey())) {
                out.add(new long[] {e.getKey(), step});
            }
        }
        return out;
    }

    /** Agent thread: a piece of a snapshot, reassembled into the copy of its rank ({@link SnapshotPieces}). */
    @Override
    public void onTensorReady(ReceiveSlot slot) {
        pieces.onTensorReady(slot);
    }

    @Override
    public void close() {
        unbind();
        sender.close();
        agent.close();
    }
}
