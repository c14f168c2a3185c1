package io.troupe.collectives;

import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.transport.DropReason;
import io.troupe.runtime.transport.FrameKind;
import io.troupe.runtime.transport.InPlaceConsumer;
import io.troupe.runtime.transport.ReceiveSlot;
import io.troupe.runtime.transport.TensorReceiverAgent;
import io.troupe.runtime.transport.TensorSender;
import io.troupe.runtime.transport.TransportEndpoint;
import io.troupe.runtime.transport.TransportNode;
import io.troupe.runtime.transport.WorkerTransport;
import java.util.Arrays;
import org.agrona.CloseHelper;
import org.agrona.ErrorHandler;
import org.agrona.collections.Int2IntHashMap;
import org.agrona.concurrent.Agent;
import org.agrona.concurrent.AgentRunner;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.agrona.concurrent.IdleStrategy;

/**
 * The collectives' duty cycle of one worker: drives the worker's {@link TensorReceiverAgent},
 * routes collective chunks to the {@link Communicator} of their group, pumps the senders and
 * advances every communicator's collective. Other tensors (activations, gradients) and peer notices
 * go on to the worker's own listener ({@code delegate}), on this agent's thread.
 *
 * <p>Set-up: {@link #open} (opens the worker with this agent as its listener), then
 * {@link #communicator} once per group, then either {@link #start} (own thread) or let callers drive
 * it: a blocking collective or {@link CollectiveHandle#await()} runs {@link #doWork()} on the
 * calling thread. Caller-driven agents must be driven by one thread at a time. When an epoch ends,
 * {@link #release} each of its communicators: its group id stops routing and its native memory is
 * freed.
 *
 * <p>Threading: {@code doWork} and the listener calls on one thread; {@code communicator},
 * {@code release} and submissions from any thread. Steady-state {@code doWork} allocates nothing.
 */
public final class CollectiveAgent implements Agent, TensorReceiverAgent.Listener, InPlaceConsumer, AutoCloseable {
    private static final TensorReceiverAgent.Listener NO_DELEGATE = slot -> slot.release();

    private final String roleName;
    private final TensorReceiverAgent.Listener delegate;
    private final ErrorHandler errorHandler;
    private final Communicator[] byGroupId = new Communicator[256];
    private volatile Communicator[] communicators = new Communicator[0];
    private volatile PeerLink[] links = new PeerLink[0];
    /** Guards changes to {@link #links} (never held while waiting for the duty cycle). */
    private final Object linksLock = new Object();
    /** Senders a newer epoch's connect replaced: closed by the duty cycle, which may still be sending on them. */
    private final java.util.concurrent.ConcurrentLinkedQueue<TensorSender> replaced =
        new java.util.concurrent.ConcurrentLinkedQueue<>();
    /** Engines released or replaced, freed by the duty cycle once no link sends from their memory. */
    private volatile CollectiveEngine[] retired = new CollectiveEngine[0];
    private final Object retiredLock = new Object();
    private WorkerTransport worker;
    private boolean ownsWorker;
    private AgentRunner runner;
    private volatile boolean threaded;
    private final java.util.concurrent.atomic.AtomicBoolean driving = new java.util.concurrent.atomic.AtomicBoolean();
    private long unroutedChunks;
    private volatile long inPlacePieces;
    private volatile long deferredOffers;
    private final Int2IntHashMap liveImages = new Int2IntHashMap(0);
    // parks early: ranks may outnumber cores
    private final IdleStrategy waitIdle = new BackoffIdleStrategy(20, 5, 1_000, 100_000);

    /**
     * @param delegate receives every non-collective tensor and peer notice (may be {@code null}: such
     *                 tensors are released)
     */
    public CollectiveAgent(String roleName, TensorReceiverAgent.Listener delegate, ErrorHandler errorHandler) {
        this.roleName = roleName;
        this.delegate = delegate == null ? NO_DELEGATE : delegate;
        this.errorHandler = errorHandler;
    }

    /** Opens a worker on {@code node} with a new agent as its listener; the agent closes the worker. */
    public static CollectiveAgent open(TransportNode node, String name, int rank, long epoch,
                                       TensorReceiverAgent.Listener delegate, ErrorHandler errorHandler) {
        CollectiveAgent agent = new CollectiveAgent(name, delegate, errorHandler);
        agent.attach(node.openWorker(name, rank, epoch, agent, errorHandler));
        agent.ownsWorker = true;
        return agent;
    }

    /** Binds to the worker this agent listens to (opened with this agent as its listener). */
    public void attach(WorkerTransport w) {
        if (worker != null) {
            throw new IllegalStateException("agent " + roleName + " is already attached");
        }
        this.worker = w;
        w.receiver().inPlaceConsumer(this);
        w.handReplacedSendersTo(replaced::add);
    }

    public WorkerTransport worker() {
        return worker;
    }

    /** Collective chunks of a group with no communicator here (released). */
    public long unroutedChunks() {
        return unroutedChunks;
    }

    /** Collective pieces taken straight from the Aeron log (no receive slot); any thread. */
    public long inPlacePieces() {
        return inPlacePieces;
    }

    /**
     * Times a piece of a communicator's next collective was left in the Aeron log until that
     * collective starts ({@link InPlaceConsumer#LATER}); any thread.
     */
    public long deferredOffers() {
        return deferredOffers;
    }

    /**
     * Creates the communicator of {@code group} (this worker's rank must be the group's
     * {@code myRank()}), opening senders to the peers its algorithms talk to.
     */
    public synchronized Communicator communicator(CollectiveGroup group, CollectiveSettings settings) {
        if (worker == null) {
            throw new IllegalStateException("agent " + roleName + " has no worker: call attach first");
        }
        if (worker.rank() != group.myRank()) {
            throw new IllegalArgumentException("group's rank differs from the worker's: group.myRank=" + group.myRank()
                + ", worker rank=" + worker.rank());
        }
        Communicator old = byGroupId[group.groupId()];
        if (old != null && old.group().epoch() >= group.epoch()) {
            throw new IllegalArgumentException("group id " + group.groupId() + " is in use in epoch "
                + old.group().epoch() + ": " + group);
        }
        Communicator c = new Communicator(this, group, settings);
        byGroupId[group.groupId()] = c;
        Communicator[] cs = communicators;
        Communicator[] next = new Communicator[cs.length + 1];
        int k = 0;
        for (Communicator x : cs) {
            if (x != old) {
                next[k++] = x;
            }
        }
        next[k++] = c;
        communicators = Arrays.copyOf(next, k);
        if (old != null) {
            retire(old.engine()); // an old epoch's communicator of the group: freed by the next duty cycle
        }
        return c;
    }

    /**
     * Releases {@code c} (its epoch ended): its group id stops routing to it, its collective in
     * flight and those queued fail, and its native memory (staging, workspace, int8 residuals) is
     * freed, at once unless a link still sends from it (then by the duty cycle once that send ends,
     * or by {@link #close}). Waits for a duty cycle running on another thread to end; must not be
     * called from inside {@link #doWork()} or a listener call. A communicator already released or
     * replaced is ignored.
     */
    public void release(Communicator c) {
        synchronized (this) {
            Communicator[] cs = communicators;
            int i = 0;
            while (i < cs.length && cs[i] != c) {
                i++;
            }
            if (i == cs.length) {
                return;
            }
            Communicator[] next = new Communicator[cs.length - 1];
            System.arraycopy(cs, 0, next, 0, i);
            System.arraycopy(cs, i + 1, next, i, cs.length - i - 1);
            communicators = next;
            if (byGroupId[c.group().groupId()] == c) {
                byGroupId[c.group().groupId()] = null;
            }
            retire(c.engine());
        }
        IdleStrategy idle = new BackoffIdleStrategy(20, 5, 1_000, 100_000);
        while (!driving.compareAndSet(false, true)) {
            idle.idle();
        }
        try {
            freeRetired(retired);
        } finally {
            driving.set(false);
        }
    }

    private void retire(CollectiveEngine e) {
        synchronized (retiredLock) {
            CollectiveEngine[] rs = retired;
            CollectiveEngine[] next = Arrays.copyOf(rs, rs.length + 1);
            next[rs.length] = e;
            retired = next;
        }
    }

    /** Fails what the retired engines still hold and frees those no link sends from (holding the duty cycle). */
    private int freeRetired(CollectiveEngine[] rs) {
        if (!replaced.isEmpty()) {
            closeReplaced(); // a replaced link's sender may still copy from an engine's memory until closed
        }
        PeerLink[] ls = links;
        int freed = 0;
        for (CollectiveEngine e : rs) {
            e.retire();
            if (e.quiet(ls)) {
                e.free();
                freed++;
            }
        }
        if (freed > 0) {
            synchronized (retiredLock) {
                CollectiveEngine[] left = retired;
                CollectiveEngine[] next = new CollectiveEngine[left.length];
                int k = 0;
                for (CollectiveEngine e : left) {
                    if (!e.isFreed()) {
                        next[k++] = e;
                    }
                }
                retired = Arrays.copyOf(next, k);
            }
        }
        return freed;
    }

    /** Whether a collective chunk of group {@code groupId} goes to a communicator here. */
    public synchronized boolean routes(int groupId) {
        return byGroupId[groupId] != null;
    }

    /** The communicators collective chunks go to (those created and neither released nor replaced). */
    public int communicatorCount() {
        return communicators.length;
    }

    /**
     * Native bytes the engines of this agent's communicators hold, the released ones not yet freed
     * included (their staging, workspace and int8 residuals). A diagnostic: read it while the agent
     * is idle.
     */
    public long nativeBytes() {
        long bytes = 0;
        for (Communicator c : communicators) {
            bytes += c.engine().nativeBytes();
        }
        for (CollectiveEngine e : retired) {
            bytes += e.nativeBytes();
        }
        return bytes;
    }

    /** The link to {@code peerRank}, opened on first use (setup time). */
    synchronized PeerLink link(int peerRank, TransportEndpoint endpoint, long epoch) {
        for (PeerLink l : links) {
            if (l.peerRank == peerRank && l.sender.epoch() == epoch) {
                return l;
            }
        }
        PeerLink l = new PeerLink(peerRank, worker.connect(peerRank, endpoint, epoch));
        synchronized (linksLock) {
            PeerLink[] ls = links;
            PeerLink[] next = new PeerLink[ls.length + 1];
            int k = 0;
            for (PeerLink x : ls) {
                if (x.peerRank != peerRank) {
                    next[k++] = x;
                }
            }
            next[k++] = l;
            links = Arrays.copyOf(next, k);
        }
        return l;
    }

    /** Runs the agent on its own thread with {@code idle} between empty duty cycles. */
    public synchronized void start(IdleStrategy idle) {
        if (runner != null) {
            throw new IllegalStateException("agent " + roleName + " is already running");
        }
        runner = new AgentRunner(idle, errorHandler, null, this);
        threaded = true;
        AgentRunner.startOnThread(runner);
    }

    /** True when the agent runs on its own thread, false when callers drive it. */
    public boolean isThreaded() {
        return threaded;
    }

    @Override
    public String roleName() {
        return roleName;
    }

    /**
     * One duty cycle: receive, pump the peer links, step the collectives. Any thread may call it —
     * the agent's own thread, and a worker's compute thread while it waits for an input or a
     * collective (it already holds a core; handing the work to it saves a wake-up that can take
     * milliseconds on a busy machine). One caller at a time runs the cycle; a concurrent caller
     * returns 0 at once.
     */
    @Override
    public int doWork() {
        if (!driving.compareAndSet(false, true)) {
            return 0;
        }
        try {
            return dutyCycle();
        } finally {
            driving.set(false);
        }
    }

    private int dutyCycle() {
        int work = replaced.isEmpty() ? 0 : closeReplaced();
        work += worker.receiver().doWork();
        PeerLink[] ls = links;
        for (PeerLink l : ls) {
            work += l.pump();
        }
        Communicator[] cs = communicators;
        long nowNs = System.nanoTime();
        for (Communicator c : cs) {
            work += c.engine().doWork(nowNs);
        }
        CollectiveEngine[] rs = retired;
        if (rs.length != 0) {
            work += freeRetired(rs);
        }
        return work;
    }

    /**
     * Closes the senders a newer epoch's connect replaced, dropping the links that send on them (a
     * tensor they were in the middle of is abandoned: its epoch has ended). Holding the duty cycle,
     * so no pump is inside them.
     */
    private int closeReplaced() {
        int closed = 0;
        TensorSender s;
        while ((s = replaced.poll()) != null) {
            synchronized (linksLock) {
                PeerLink[] ls = links;
                PeerLink[] next = new PeerLink[ls.length];
                int k = 0;
                for (PeerLink l : ls) {
                    if (l.sender != s) {
                        next[k++] = l;
                    }
                }
                links = Arrays.copyOf(next, k);
            }
            CloseHelper.quietClose(s);
            closed++;
        }
        return closed;
    }

    /**
     * Waits until {@code h} is done or {@code deadlineNs} passes, driving the agent whenever its
     * own thread (if any) is not. Idle: spin, then yield, then park 1..100 us: ranks that outnumber the cores must hand
     * the CPU to the peer they wait for, which spinning alone would not.
     */
    void awaitDone(CollectiveHandle h, long deadlineNs) {
        IdleStrategy idle = waitIdle;
        idle.reset();
        while (!h.isDone() && System.nanoTime() < deadlineNs) {
            idle.idle(doWork());
        }
    }

    // ------------------------------------------------------------------ listener (agent thread)

    @Override
    public void onTensorReady(ReceiveSlot slot) {
        if (slot.kind() != FrameKind.COLLECTIVE_CHUNK) {
            delegate.onTensorReady(slot);
            return;
        }
        Communicator c = byGroupId[CollectiveKey.groupId(slot.tensorKey())];
        if (c == null) {
            unroutedChunks++;
            slot.release();
            return;
        }
        c.engine().onSlot(slot);
    }

    /** A whole collective piece arrives: its communicator takes it in place if it is the piece it waits for. */
    @Override
    public InPlaceConsumer.Sink onWholeTensor(int sourceRank, FrameKind kind, long tensorKey, long step, DType dtype,
                                              long totalBytes) {
        if (kind != FrameKind.COLLECTIVE_CHUNK) {
            return null;
        }
        Communicator c = byGroupId[CollectiveKey.groupId(tensorKey)];
        InPlaceConsumer.Sink sink = c == null ? null : c.engine().onWholeTensor(sourceRank, tensorKey, step, dtype,
            totalBytes);
        if (sink == InPlaceConsumer.LATER) {
            deferredOffers++;
        } else if (sink != null) {
            inPlacePieces++;
        }
        return sink;
    }

    @Override
    public void onPeerConnected(int peerRank, String sourceIdentity) {
        liveImages.put(peerRank, liveImages.get(peerRank) + 1);
        delegate.onPeerConnected(peerRank, sourceIdentity);
    }

    /**
     * A peer's image went away. Collectives fail only when the peer has no image left: after a
     * re-plan the peer's old-epoch publication goes away while its new one lives on.
     */
    @Override
    public void onPeerLost(int peerRank) {
        int left = liveImages.get(peerRank) - 1;
        if (left > 0) {
            liveImages.put(peerRank, left);
        } else {
            // 0 is the map's missing value: it cannot be stored, so the entry goes.
            liveImages.remove(peerRank);
        }
        if (left <= 0) {
            for (Communicator c : communicators) {
                c.engine().onPeerLost(peerRank);
            }
        }
        delegate.onPeerLost(peerRank);
    }

    /**
     * A corrupt chunk from {@code sourceRank}: a collective chunk, or one of unknown kind, fails the communicators
     * that wait on that rank at once (naming the reason); every other kind, and an unknown one, goes to the delegate.
     */
    @Override
    public void onTensorCorrupted(int sourceRank, FrameKind kind, long tensorKey, DropReason reason) {
        if (kind == null || kind == FrameKind.COLLECTIVE_CHUNK) {
            for (Communicator c : communicators) {
                if (c.group().indexOf(sourceRank) >= 0) {
                    c.engine().abort("a chunk from rank " + sourceRank + " arrived corrupt (" + reason + ")");
                }
            }
        }
        delegate.onTensorCorrupted(sourceRank, kind, tensorKey, reason);
    }

    void onError(Throwable t) {
        errorHandler.onError(t);
    }

    /**
     * Stops the thread (if any), frees the communicators' memory (released ones' too), and closes the
     * worker if {@link #open} made it.
     */
    @Override
    public synchronized void close() {
        CloseHelper.close(runner);
        runner = null;
        threaded = false;
        for (TensorSender s = replaced.poll(); s != null; s = replaced.poll()) {
            CloseHelper.quietClose(s);
        }
        for (Communicator c : communicators) {
            c.engine().free();
        }
        communicators = new Communicator[0];
        synchronized (retiredLock) {
            for (CollectiveEngine e : retired) {
                e.free();
            }
            retired = new CollectiveEngine[0];
        }
        if (ownsWorker) {
            CloseHelper.close(worker);
        }
    }
}
