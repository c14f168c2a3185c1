package io.troupe.collectives;

import io.troupe.collectives.compress.ErrorFeedback;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.transport.InPlaceConsumer;
import io.troupe.runtime.transport.ReceiveSlot;
import io.troupe.runtime.transport.TransportException;
import org.agrona.concurrent.ManyToOneConcurrentArrayQueue;

/**
 * The agent-side half of a {@link Communicator}: its queue of submitted collectives, its inbox of
 * received pieces, the deadline and failure handling, and the services the algorithms use (send,
 * receive, signature checks). Which algorithm runs a collective, and the scratch memory it uses, is
 * {@link CollectiveDispatch}'s.
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
    final ErrorFeedback errorFeedback = new ErrorFeedback();
    private final CollectiveDispatch dispatch;
    private final RingAlgorithm ring;

    private int inboxCount;
    private CollectiveHandle current;
    private long seq;
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
        this.dispatch = new CollectiveDispatch(this, settings, n, me, errorFeedback);
        this.ring = dispatch.ring();
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
        return dispatch.kernels();
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
                work += dispatch.runStep();
                if (dispatch.runDone()) {
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
        dispatch.reset();
        CollectiveException b = broken;
        if (b != null) {
            failOp(new CollectiveException("communicator broken by an earlier failure (" + b.getMessage() + "): "
                + describeCurrent(), group.epoch(), b.missingRank(), b));
            return;
        }
        try {
            dispatch.start(h);
        } catch (RuntimeException e) {
            failOp(new CollectiveException(describeCurrent() + " failed to start: " + e, group.epoch(), -1, e));
            return;
        }
        if (dispatch.running() == EngineAlgorithm.NONE) {
            finishOp();
        }
    }

    private void finishOp() {
        CollectiveHandle h = current;
        dispatch.afterRun(h);
        current = null;
        dispatch.stop();
        completed++;
        h.complete(System.nanoTime());
    }

    private void failOp(CollectiveException e) {
        CollectiveHandle h = current;
        if (broken == null) {
            broken = e;
        }
        dispatch.abandon();
        for (PeerLink l : links) {
            if (l != null) {
                l.clearOwner(this);
            }
        }
        releaseInbox();
        current = null;
        dispatch.stop();
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
            if (CollectiveKey.seq(s.tensorKey()) == seqBits && s.step() != dispatch.signature()) {
                return mismatch(s);
            }
        }
        int idx = dispatch.waitingFor();
        int rank = idx >= 0 ? group.rankAt(idx) : -1;
        return new CollectiveTimeoutException(describeCurrent() + " timed out after timeoutNs=" + settings.timeoutNs()
            + " waiting for rank " + rank + " (epoch " + group.epoch() + ")", group.epoch(), rank, null);
    }

    private CollectiveMismatchException mismatch(ReceiveSlot s) {
        return new CollectiveMismatchException("collective mismatch: rank " + s.sourceRank() + " issued "
            + CollectiveKey.describe(s.step()) + " where this rank issued "
            + CollectiveKey.describe(dispatch.signature()) + " as " + describeCurrent(), group.epoch(), s.sourceRank());
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
                if (s.step() != dispatch.signature()) {
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
        if (dispatch.running() == EngineAlgorithm.RING && current != null && step == dispatch.signature()
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
        links[idx].begin(this, dispatch.signature(), CollectiveKey.key(seq, groupId, step, piece), dtype, address,
            count);
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
        links[idx].beginClaimed(this, dispatch.signature(), CollectiveKey.key(seq, groupId, step, piece), dtype,
            count);
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
        return dispatch.scratchBytes() + errorFeedback.nativeBytes();
    }

    boolean isFreed() {
        return freed;
    }

    void free() {
        releaseInbox();
        dispatch.free();
        errorFeedback.close();
        freed = true;
    }

    @Override
    public String toString() {
        return "CollectiveEngine{" + group + "}";
    }
}
