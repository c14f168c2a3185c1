package io.troupe.collectives;

import io.troupe.collectives.compress.ErrorFeedback;
import io.troupe.collectives.compress.Int8Codec;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.transport.InPlaceConsumer;
import io.troupe.runtime.transport.ReceiveSlot;
import io.troupe.runtime.transport.TransportException;
import org.agrona.UnsafeApi;
import org.agrona.concurrent.ManyToOneConcurrentArrayQueue;

/**
 * The agent-side half of a {@link Communicator}: its queue of submitted collectives, its inbox of
 * received pieces, the algorithm running now, the deadline and failure handling, and the services
 * the algorithms use (send, receive, signature checks, scratch memory).
 *
 * <p>Threading: everything but {@link #queue} runs on the agent's thread. Allocation-free in steady state.
 */
final class CollectiveEngine implements InPlaceConsumer.Sink {
    private static final int INBOX_CAPACITY = 4096;
    /** The signature variant of a ring collective without compression. */
    private static final int PLAIN_RING_VARIANT = CollectiveKey.variant(EngineAlgorithm.RING.wireCode,
        Compression.NONE);
    /**
     * How long pieces of this communicator's next ring collective may wait in the Aeron log for
     * that collective to start ({@link InPlaceConsumer#LATER}) before they go to receive slots: a
     * peer that started earlier then costs no slot copy, and whatever else its publication carries
     * is held up for at most this long.
     */
    static final long DEFER_LIMIT_NS = 2_000_000;

    private final CollectiveAgent agent;
    private final CollectiveGroup group;
    private final CollectiveSettings settings;
    private final int n;
    private final int me;
    private final int groupId;
    private final PeerLink[] links;
    final ManyToOneConcurrentArrayQueue<CollectiveHandle> queue = new ManyToOneConcurrentArrayQueue<>(1024);
    private final ReceiveSlot[] inbox = new ReceiveSlot[INBOX_CAPACITY];
    private final RingAlgorithm ring = new RingAlgorithm();
    private final RecursiveDoublingAlgorithm doubling = new RecursiveDoublingAlgorithm();
    private final ChainBroadcast chain = new ChainBroadcast();
    private final GatherReference reference = new GatherReference();
    private final NativeScratch staging = new NativeScratch();
    private final NativeScratch workspace = new NativeScratch();
    private final NativeScratch small = new NativeScratch();
    final ErrorFeedback errorFeedback = new ErrorFeedback();
    private final ReduceKernels kernels = new ReduceKernels();

    private int inboxCount;
    private CollectiveHandle current;
    private EngineAlgorithm running = EngineAlgorithm.NONE;
    private AfterRun post = AfterRun.NOTHING;
    private long seq;
    private long signature;
    private long deadlineNs;
    private long deferSinceNs;
    volatile CollectiveException broken;
    /** Set by {@link #abort} from any thread; the agent thread fails the current and later collectives. */
    private volatile String abortReason;
    volatile long completed;
    /** Payload bytes this member has handed to its links (written by the agent thread only). */
    volatile long sentBytes;
    /** Set once {@link #free} ran (by a thread holding the duty cycle). */
    private volatile boolean freed;

    CollectiveEngine(CollectiveAgent agent, CollectiveGroup group, CollectiveSettings settings) {
        this.agent = agent;
        this.group = group;
        this.settings = settings;
        this.n = group.size();
        this.me = group.myIndex();
        this.groupId = group.groupId();
        this.links = new PeerLink[n];
        UnsafeApi.setMemory(small.ensure(4096), 4096, (byte) 0);
        for (int i = 0; i < n; i++) {
            if (i != me && talksTo(i)) {
                links[i] = agent.link(group.rankAt(i), group.endpointAt(i), group.epoch());
            }
        }
    }

    /** The peers any algorithm of this member sends to: ring successor, doubling partners, reference root/all. */
    private boolean talksTo(int i) {
        if (i == (me + 1) % n || me == 0 || i == 0) {
            return true;
        }
        int p = Integer.highestOneBit(n);
        if (me >= p) {
            return i == me - p;
        }
        return i == me + p || Integer.bitCount(i ^ me) == 1 && i < p;
    }

    int size() {
        return n;
    }

    int myIndex() {
        return me;
    }

    CollectiveSettings settings() {
        return settings;
    }

    ReduceKernels kernels() {
        return kernels;
    }

    // ------------------------------------------------------------------ engine (agent thread)

    int doWork(long nowNs) {
        int work = 0;
        String aborted = abortReason;
        if (aborted != null && broken == null) {
            CollectiveException e = new CollectiveException("aborted (" + aborted + ") during " + describeCurrent(),
                group.epoch(), -1, null);
            if (current != null) {
                failOp(e);
            } else {
                broken = e;
                releaseInbox();
            }
            work++;
        }
        while (true) {
            if (current == null) {
                CollectiveHandle h = queue.poll();
                if (h == null) {
                    return work;
                }
                work++;
                startOp(h, nowNs);
                continue;
            }
            try {
                work += runStep();
                if (runDone()) {
                    finishOp();
                    continue;
                }
            } catch (CollectiveException e) {
                failOp(e);
                continue;
            } catch (RuntimeException e) {
                failOp(new CollectiveException(describeCurrent() + " failed: " + e, group.epoch(), -1, e));
                continue;
            }
            if (nowNs - deadlineNs > 0) {
                failOp(timeout());
            }
            return work;
        }
    }

    private void startOp(CollectiveHandle h, long nowNs) {
        current = h;
        deferSinceNs = 0;
        h.startNs = nowNs;
        deadlineNs = nowNs + settings.timeoutNs();
        seq++;
        post = AfterRun.NOTHING;
        running = EngineAlgorithm.NONE;
        CollectiveException b = broken;
        if (b != null) {
            failOp(new CollectiveException("communicator broken by an earlier failure (" + b.getMessage() + "): "
                + describeCurrent(), group.epoch(), b.missingRank(), b));
            return;
        }
        try {
            dispatch(h);
        } catch (RuntimeException e) {
            failOp(new CollectiveException(describeCurrent() + " failed to start: " + e, group.epoch(), -1, e));
            return;
        }
        if (running == EngineAlgorithm.NONE) {
            finishOp();
        }
    }

    private void dispatch(CollectiveHandle h) {
        long count = h.count;
        boolean average = h.reduceOp == ReduceOp.AVERAGE;
        Compression compression = settings.compression();
        switch (h.op) {
            case ALL_REDUCE -> {
                if (n == 1) {
                    signLocal(h);
                    return;
                }
                if (compression == Compression.INT8 || compression == Compression.INT8_ERROR_FEEDBACK) {
                    startInt8(h);
                    return;
                }
                CollectiveAlgorithm a = settings.algorithm();
                if (a == CollectiveAlgorithm.AUTO) {
                    a = count * 4 <= settings.smallMaxBytes() ? CollectiveAlgorithm.RECURSIVE_DOUBLING
                        : CollectiveAlgorithm.RING;
                }
                boolean bf16 = compression == Compression.BF16;
                if (a == CollectiveAlgorithm.REFERENCE) {
                    sign(h, EngineAlgorithm.REFERENCE);
                    reference.start(this, h.address, count, average);
                } else if (a == CollectiveAlgorithm.RECURSIVE_DOUBLING) {
                    sign(h, EngineAlgorithm.RECURSIVE_DOUBLING);
                    doubling.start(this, h.address, count, bf16, average, bf16 ? staging.ensure(count * 2) : 0);
                } else {
                    sign(h, EngineAlgorithm.RING);
                    ring.start(this, RingPhases.ALL_REDUCE, h.address, count, bf16 ? RingWire.BF16 : RingWire.F32,
                        average, bf16 ? staging.ensure(count * 2) : 0, small.ensure(4096));
                }
            }
            case REDUCE_SCATTER -> {
                long ws = workspace.ensure(count * 4);
                ReduceKernels.copy(h.address, ws, count * 4);
                post = AfterRun.COPY_SEGMENT;
                if (n == 1) {
                    signLocal(h);
                    return;
                }
                sign(h, EngineAlgorithm.RING);
                // bf16 halves the bytes as in the all-reduce; int8 has no reduce-scatter form (float32 then).
                boolean bf16 = compression == Compression.BF16;
                ring.start(this, RingPhases.REDUCE_SCATTER, ws, count, bf16 ? RingWire.BF16 : RingWire.F32, average,
                    bf16 ? staging.ensure(count * 2) : 0, small.ensure(4096));
            }
            case ALL_GATHER -> {
                long s0 = Communicator.segmentStart(count, n, me);
                ReduceKernels.copy(h.otherAddress, h.address + s0 * 4, (Communicator.segmentStart(count, n, me + 1)
                    - s0) * 4);
                if (n == 1) {
                    signLocal(h);
                    return;
                }
                sign(h, EngineAlgorithm.RING);
                ring.start(this, RingPhases.ALL_GATHER, h.address, count, RingWire.F32, false, 0, small.ensure(4096));
            }
            case BROADCAST -> {
                if (n == 1) {
                    signLocal(h);
                    return;
                }
                sign(h, EngineAlgorithm.CHAIN);
                chain.start(this, h.address, count, h.root);
            }
            case BARRIER -> {
                if (n == 1) {
                    signLocal(h);
                    return;
                }
                sign(h, EngineAlgorithm.RECURSIVE_DOUBLING);
                UnsafeApi.putFloat(small.ensure(4096) + 64, 0f);
                doubling.start(this, small.ensure(4096) + 64, 1, false, false, 0);
            }
            default -> throw new IllegalStateException("unknown op " + h.op);
        }
    }

    /**
     * Records the op's signature and what runs it. A group of one runs nothing; its ops are signed as
     * ring ops ({@link #signLocal}).
     */
    private void sign(CollectiveHandle h, EngineAlgorithm algorithm) {
        running = n == 1 ? EngineAlgorithm.NONE : algorithm;
        signature = CollectiveKey.signature(h.tag, h.op.ordinal(),
            CollectiveKey.variant(algorithm.wireCode, settings.compression()), h.count);
    }

    /** Signs an op a group of one completes at start. */
    private void signLocal(CollectiveHandle h) {
        sign(h, EngineAlgorithm.RING);
    }

    /** int8: quantise (g + e), all-gather every member's quantised vector, sum them in member order. */
    private void startInt8(CollectiveHandle h) {
        long count = h.count;
        long cb = Int8Codec.encodedBytes(count);
        long gathered = workspace.ensure(cb * n);
        long mine = gathered + cb * me;
        if (settings.compression() == Compression.INT8_ERROR_FEEDBACK) {
            long residual = errorFeedback.residualAddress(h.tag, count);
            long v = staging.ensure(count * 4);
            ReduceKernels.copy(h.address, v, count * 4);
            kernels.addInto(v, residual, count);
            Int8Codec.encode(v, count, mine, residual);
        } else {
            Int8Codec.encode(h.address, count, mine, 0);
        }
        post = AfterRun.INT8_SUM;
        sign(h, EngineAlgorithm.RING);
        ring.start(this, RingPhases.ALL_GATHER, gathered, cb * n, RingWire.BYTES, false, 0, small.ensure(4096));
    }

    private int runStep() {
        return switch (running) {
            case RING -> ring.doWork();
            case RECURSIVE_DOUBLING -> doubling.doWork();
            case CHAIN -> chain.doWork();
            case REFERENCE -> reference.doWork();
            case NONE -> 0;
        };
    }

    private boolean runDone() {
        return switch (running) {
            case RING -> ring.isDone();
            case RECURSIVE_DOUBLING -> doubling.isDone();
            case CHAIN -> chain.isDone();
            case REFERENCE -> reference.isDone();
            case NONE -> true;
        };
    }

    private int waitingFor() {
        return switch (running) {
            case RING -> ring.waitingFor();
            case RECURSIVE_DOUBLING -> doubling.waitingFor();
            case CHAIN -> chain.waitingFor();
            case REFERENCE -> reference.waitingFor();
            case NONE -> -1;
        };
    }

    private void finishOp() {
        CollectiveHandle h = current;
        if (post == AfterRun.COPY_SEGMENT) {
            long s0 = Communicator.segmentStart(h.count, n, me);
            ReduceKernels.copy(workspace.ensure(h.count * 4) + s0 * 4, h.otherAddress,
                (Communicator.segmentStart(h.count, n, me + 1) - s0) * 4);
        } else if (post == AfterRun.INT8_SUM) {
            long cb = Int8Codec.encodedBytes(h.count);
            long gathered = workspace.ensure(cb * n);
            UnsafeApi.setMemory(h.address, h.count * 4, (byte) 0);
            for (int k = 0; k < n; k++) {
                Int8Codec.decodeAdd(gathered + cb * k, h.count, h.address);
            }
            if (h.reduceOp == ReduceOp.AVERAGE) {
                kernels.divide(h.address, h.count, n);
            }
        }
        current = null;
        running = EngineAlgorithm.NONE;
        completed++;
        h.complete(System.nanoTime());
    }

    private void failOp(CollectiveException e) {
        CollectiveHandle h = current;
        if (broken == null) {
            broken = e;
        }
        if (running == EngineAlgorithm.REFERENCE) {
            reference.abandon();
        }
        ring.abandonInPlace();
        for (PeerLink l : links) {
            if (l != null) {
                l.clearOwner(this);
            }
        }
        releaseInbox();
        current = null;
        running = EngineAlgorithm.NONE;
        if (h != null) {
            h.fail(e, System.nanoTime());
        }
    }

    private void releaseInbox() {
        for (int i = 0; i < inboxCount; i++) {
            inbox[i].release();
            inbox[i] = null;
        }
        inboxCount = 0;
    }

    private String describeCurrent() {
        CollectiveHandle h = current;
        return h == null ? "no collective" : h.op + " #" + seq + " (count=" + h.count + ", tag=" + h.tag + ", group "
            + group.groupId() + " epoch " + group.epoch() + ", member " + me + "/" + n + " rank " + group.myRank()
                + ")";
    }

    private CollectiveException timeout() {
        long seqBits = CollectiveKey.seqBits(seq);
        for (int i = 0; i < inboxCount; i++) {
            ReceiveSlot s = inbox[i];
            if (CollectiveKey.seq(s.tensorKey()) == seqBits && s.step() != signature) {
                return mismatch(s);
            }
        }
        int idx = waitingFor();
        int rank = idx >= 0 ? group.rankAt(idx) : -1;
        return new CollectiveTimeoutException(describeCurrent() + " timed out after timeoutNs=" + settings.timeoutNs()
            + " waiting for rank " + rank + " (epoch " + group.epoch() + ")", group.epoch(), rank, null);
    }

    private CollectiveMismatchException mismatch(ReceiveSlot s) {
        return new CollectiveMismatchException("collective mismatch: rank " + s.sourceRank() + " issued "
            + CollectiveKey.describe(s.step()) + " where this rank issued " + CollectiveKey.describe(signature) + " as "
            + describeCurrent(), group.epoch(), s.sourceRank());
    }

    // ------------------------------------------------------------------ services for the algorithms

    /** Takes the piece {@code (step, piece)} of the current collective from member {@code idx}, or null. */
    ReceiveSlot receive(int idx, int step, int piece) {
        long key = CollectiveKey.key(seq, groupId, step, piece);
        int rank = group.rankAt(idx);
        for (int i = 0; i < inboxCount; i++) {
            ReceiveSlot s = inbox[i];
            if (s.tensorKey() == key && s.sourceRank() == rank) {
                inbox[i] = inbox[--inboxCount];
                inbox[inboxCount] = null;
                if (s.step() != signature) {
                    CollectiveMismatchException e = mismatch(s);
                    s.release();
                    throw e;
                }
                return s;
            }
        }
        return null;
    }

    /** The key of piece {@code (step, piece)} of the current collective. */
    long pieceKey(int step, int piece) {
        return CollectiveKey.key(seq, groupId, step, piece);
    }

    int rankAtIndex(int idx) {
        return group.rankAt(idx);
    }

    /**
     * The receiver offers a whole collective piece in place: taken (this engine is its sink) when it
     * is exactly the piece the running ring waits for next, with this collective's signature.
     */
    InPlaceConsumer.Sink onWholeTensor(int sourceRank, long key, long step, DType dtype, long totalBytes) {
        if (broken != null) {
            return null;
        }
        if (running == EngineAlgorithm.RING && current != null && step == signature
            && ring.acceptInPlace(sourceRank, key, dtype, totalBytes)) {
            return this;
        }
        return isNextRingPiece(key, step, dtype) && mayDefer() ? InPlaceConsumer.LATER : null;
    }

    /**
     * A float32 piece of a plain (uncompressed) ring collective that is this communicator's next
     * one: it arrived because its sender started that collective before this member did.
     */
    private boolean isNextRingPiece(long key, long step, DType dtype) {
        return dtype == DType.F32 && CollectiveKey.variant(step) == PLAIN_RING_VARIANT
            && CollectiveKey.seq(key) == CollectiveKey.seqBits(seq + 1);
    }

    /** Whether the next collective's pieces may still wait in the log ({@link #DEFER_LIMIT_NS} from the first). */
    private boolean mayDefer() {
        long now = System.nanoTime();
        if (deferSinceNs == 0) {
            deferSinceNs = now;
        } else if (now - deferSinceNs > DEFER_LIMIT_NS) {
            return false;
        }
        return true;
    }

    @Override
    public void onData(long address, long tensorOffset, int lengthBytes) {
        ring.inPlaceData(address, tensorOffset, lengthBytes);
    }

    @Override
    public void onEnd(boolean complete) {
        if (!ring.isReceivingInPlace()) {
            return;
        }
        if (!ring.endInPlace(complete)) {
            failOp(new CollectiveException("a piece from rank " + group.rankAt(ring.waitingFor()) + " was cut short"
                + " while reduced in place in " + describeCurrent(), group.epoch(), group.rankAt(ring.waitingFor()),
                    null));
            return;
        }
        try {
            ring.doWork(); // send what the piece just unblocked, before the receiver polls on
        } catch (CollectiveException e) {
            failOp(e);
        } catch (RuntimeException e) {
            failOp(new CollectiveException(describeCurrent() + " failed: " + e, group.epoch(), -1, e));
        }
    }

    /** Checks a piece's size against what this member expects. */
    void checkPiece(ReceiveSlot s, long expectedBytes, int idx) {
        if (s.lengthBytes() != expectedBytes) {
            long got = s.lengthBytes();
            s.release();
            throw new CollectiveMismatchException("collective mismatch: rank " + group.rankAt(idx) + " sent a piece of "
                + got + " bytes where " + expectedBytes + " were expected in " + describeCurrent(), group.epoch(),
                group.rankAt(idx));
        }
    }

    boolean linkIdle(int idx) {
        return links[idx].isIdle();
    }

    boolean sendDone(int idx) {
        return links[idx].isDoneFor(this);
    }

    void send(int idx, int step, int piece, DType dtype, long address, long count) {
        sentBytes += count * dtype.sizeBytes();
        links[idx].begin(this, signature, CollectiveKey.key(seq, groupId, step, piece), dtype, address, count);
    }

    /** Ring pieces this engine wrote straight into a neighbour's shared-memory ring (tests, diagnostics). */
    long forwardedPieces() {
        return ring.forwardedPieces();
    }

    /** Reserves room for a piece to member {@code idx} that the ring writes in place (see {@link PeerLink#claim}). */
    long claim(int idx, long bytes) {
        return links[idx].claim(bytes);
    }

    /** Sends the piece written into the reservation of {@link #claim}. */
    void sendClaimed(int idx, int step, int piece, DType dtype, long count) {
        sentBytes += count * dtype.sizeBytes();
        links[idx].beginClaimed(this, signature, CollectiveKey.key(seq, groupId, step, piece), dtype, count);
    }

    void onSlot(ReceiveSlot slot) {
        if (broken != null) {
            slot.release();
            return;
        }
        if (inboxCount == INBOX_CAPACITY) {
            slot.release();
            failOp(new CollectiveException("inbox full (" + INBOX_CAPACITY + " pieces) in " + describeCurrent(),
                group.epoch(), slot.sourceRank(), null));
            return;
        }
        inbox[inboxCount++] = slot;
    }

    void onSendFailed(int peerRank, TransportException e) {
        if (current != null) {
            failOp(new CollectiveTimeoutException(describeCurrent() + " failed sending to rank " + peerRank + " (epoch "
                + group.epoch() + "): " + e.getMessage(), group.epoch(), peerRank, e));
        }
    }

    /** Any thread: the collective in flight and every later one fail with {@code reason} (the job's epoch ended). */
    void abort(String reason) {
        abortReason = reason;
    }

    void onPeerLost(int peerRank) {
        if (group.indexOf(peerRank) < 0) {
            return;
        }
        CollectiveTimeoutException e = new CollectiveTimeoutException("peer lost: rank " + peerRank + " (epoch "
            + group.epoch() + ") during " + describeCurrent(), group.epoch(), peerRank, null);
        if (current != null) {
            failOp(e);
        } else if (broken == null) {
            broken = e;
            releaseInbox();
        }
    }

    /**
     * Agent thread (or a thread holding the duty cycle): the communicator was released or replaced.
     * The collective in flight and every queued one fail, received pieces go back, and a piece
     * arriving in place is no longer written. Allocates nothing once done.
     */
    void retire() {
        if (broken == null || current != null || !queue.isEmpty()) {
            CollectiveException e = new CollectiveException("communicator of group " + groupId + " epoch "
                + group.epoch() + " released during " + describeCurrent(), group.epoch(), -1, null);
            if (current != null) {
                failOp(e);
            } else if (broken == null) {
                broken = e;
            }
            ring.abandonInPlace();
            releaseInbox();
            for (CollectiveHandle h = queue.poll(); h != null; h = queue.poll()) {
                h.fail(e, System.nanoTime());
            }
        }
    }

    /** Whether none of this member's links among {@code live} (those the agent pumps) still sends from this memory. */
    boolean quiet(PeerLink[] live) {
        for (PeerLink l : links) {
            if (l != null && !l.isIdle()) {
                for (PeerLink x : live) {
                    if (x == l) {
                        return false;
                    }
                }
            }
        }
        return true;
    }

    /** Native bytes held: staging, workspace, small scratch and int8 residuals. */
    long nativeBytes() {
        return staging.capacityBytes() + workspace.capacityBytes() + small.capacityBytes()
            + errorFeedback.nativeBytes();
    }

    boolean isFreed() {
        return freed;
    }

    void free() {
        releaseInbox();
        staging.free();
        workspace.free();
        small.free();
        errorFeedback.close();
        freed = true;
    }

    @Override
    public String toString() {
        return "CollectiveEngine{" + group + "}";
    }

    /**
     * What {@link #finishOp} does after the algorithm: nothing, copy out this member's segment, or sum the int8
     * vectors.
     */
    private enum AfterRun {
        NOTHING,
        COPY_SEGMENT,
        INT8_SUM
    }
}
