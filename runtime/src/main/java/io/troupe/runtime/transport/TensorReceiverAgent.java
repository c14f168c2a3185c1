package io.troupe.runtime.transport;

import io.aeron.Aeron;
import io.aeron.Subscription;
import org.agrona.CloseHelper;
import org.agrona.ErrorHandler;
import org.agrona.concurrent.Agent;
import org.agrona.concurrent.IdleStrategy;

/**
 * Receives tensor frames for one worker: polls its subscriptions (one IPC for same-node peers, one
 * UDP for remote peers), validates every frame, reassembles chunks in place into pooled
 * {@link ReceiveSlot}s keyed by (source rank, kind, tensor key, epoch), and tells its
 * {@link Listener} only when a whole tensor is there.
 *
 * <p>Aeron fragments of one chunk message are written straight from the term buffer into the slot
 * (no FragmentAssembler copy). An optional {@link InPlaceConsumer} may take whole tensors straight
 * from the term buffer instead (no slot at all). CRC32C is required and checked per channel
 * ({@link TransportSettings#crcEnabledFor}): on the UDP subscription by default, not on IPC. With an
 * auth key ({@link TransportSettings#authKey()}) every UDP frame must carry a {@link FrameMac} tag
 * instead: a frame in one fragment is checked before anything it says is used, a longer chunk once it is
 * whole in its slot (before it is delivered, and only into a slot its own image started); a tagged frame whose
 * counter this receiver has taken before from its source rank in its epoch is refused ({@link ReplayGuard}).
 *
 * <p>When the receive budget is used up the agent stops consuming the image whose next tensor does
 * not fit ({@code ABORT}), so that sender is back-pressured; nothing is dropped silently. Every dropped frame is
 * counted by {@link DropReason}.
 *
 * <p>The agent is the duty cycle; the work is done by its parts: {@link TensorFrameAdapter} (each
 * fragment to the part that takes it, and the one decision whether a message is accepted),
 * {@link ReceiverImages} (each image's state, images coming and going),
 * {@link SameHostSources} (same-JVM links and same-host rings), {@link SlotReassembler} (chunks into
 * slots) and {@link InPlaceDelivery} (whole tensors to an {@link InPlaceConsumer}).
 *
 * <p>Threading: {@link #doWork()}, {@link #takeReady} and the listener calls run on one thread (an
 * {@code AgentRunner}, or the owner's own duty cycle). {@link ReceiveSlot#release()},
 * {@link #epoch(long)} and the counters may be used from any thread. {@code doWork} never throws:
 * errors go to the injected {@link ErrorHandler}.
 */
public final class TensorReceiverAgent implements Agent, AutoCloseable {
    /** Receives notices on the agent thread; implementations must not block. */
    public interface Listener {
        /** A whole tensor is in {@code slot}; the owner must {@link ReceiveSlot#release()} it later. */
        void onTensorReady(ReceiveSlot slot);

        /** A peer's publication connected to this receiver. */
        default void onPeerConnected(int peerRank, String sourceIdentity) {
        }

        /** A peer's image went away (closed, or silent longer than the peer-lost timeout). */
        default void onPeerLost(int peerRank) {
        }

        /**
         * A chunk of a tensor of the current job and epoch from {@code sourceRank} arrived corrupt
         * ({@code reason}, e.g. {@link DropReason#BAD_CHUNK_CRC}) and was dropped: the tensor can never
         * complete, so whoever waits for it should fail now rather than at its deadline. {@code kind} is null
         * when the damage left the frame's kind and key unknown (a header field read before its tag): whoever
         * waits for anything from {@code sourceRank} should fail.
         */
        default void onTensorCorrupted(int sourceRank, FrameKind kind, long tensorKey, DropReason reason) {
        }
    }

    /** Fragments one poll of a subscription takes at most. */
    static final int FRAGMENT_LIMIT = 256;

    private final String roleName;
    private final Subscription[] subscriptions;
    private final boolean[] ipcBySubscription;
    private final boolean[] crcBySubscription;
    private final TensorFrameDecoder[] decoders;
    private final ReceiveSlotPool pool;
    private final Listener listener;
    private final ReceiverCounters counters;
    private final ReceiverImages images;
    private final SameHostSources sources;
    private final SlotReassembler reassembler;
    private final InPlaceDelivery inPlace;
    private final ReplayGuard replays = new ReplayGuard();
    private final ReceiverImages.Handler imageHandler = new ImageHandler();
    private final TensorFrameAdapter frames;

    private volatile int ownerRank;
    private volatile long epoch;
    private volatile int jobId = JobIdentity.NO_JOB;
    private long appliedEpoch;

    /**
     * Creates the agent and its subscriptions.
     *
     * @param channels  one subscription per channel, all on {@code streamId}
     * @param ownerRank this worker's rank (frames for other ranks are dropped); -1 until assigned
     * @param epoch     frames of older epochs are dropped
     */
    public TensorReceiverAgent(String roleName, Aeron aeron, String[] channels, int streamId,
                               TransportSettings settings, int ownerRank, long epoch, Listener listener,
                               ErrorHandler errorHandler) {
        this(roleName, aeron, channels, streamId, settings, ownerRank, epoch, listener, errorHandler, null, null);
    }

    /**
     * @param localLinks the node's in-process links ({@code null}: by-reference frames are dropped)
     * @param ringDir    where same-host senders keep their {@link IpcRing}s, the driver's directory
     *                   ({@code null}: by-ring frames are dropped)
     */
    TensorReceiverAgent(String roleName, Aeron aeron, String[] channels, int streamId, TransportSettings settings,
                        int ownerRank, long epoch, Listener listener, ErrorHandler errorHandler,
                        LocalCopyRegistry localLinks, String ringDir) {
        this.roleName = roleName;
        this.ipcBySubscription = new boolean[channels.length];
        this.crcBySubscription = new boolean[channels.length];
        this.decoders = new TensorFrameDecoder[channels.length];
        for (int i = 0; i < channels.length; i++) {
            ipcBySubscription[i] = TransportChannels.isIpc(channels[i]);
            crcBySubscription[i] = settings.crcEnabledFor(ipcBySubscription[i]);
            decoders[i] = new TensorFrameDecoder(crcBySubscription[i], settings.authKeyFor(ipcBySubscription[i]));
        }
        this.pool = new ReceiveSlotPool(settings.receiveBudgetBytes(), settings.receiveSlotsMax());
        this.listener = listener;
        this.counters = new ReceiverCounters(errorHandler);
        this.images = new ReceiverImages(roleName, counters);
        this.sources = new SameHostSources(localLinks, ringDir);
        this.reassembler = new SlotReassembler(pool, listener, counters, replays);
        this.inPlace = new InPlaceDelivery(counters);
        this.frames = new TensorFrameAdapter(this, images, sources, reassembler, inPlace, replays, counters);
        polling(0);
        this.ownerRank = ownerRank;
        this.epoch = epoch;
        this.appliedEpoch = epoch;
        this.subscriptions = new Subscription[channels.length];
        try {
            for (int i = 0; i < channels.length; i++) {
                subscriptions[i] = aeron.addSubscription(channels[i], streamId, images::onAvailableImage,
                    images::onUnavailableImage);
            }
        } catch (RuntimeException e) {
            CloseHelper.closeAll(subscriptions);
            pool.close();
            throw e;
        }
    }

    @Override
    public String roleName() {
        return roleName;
    }

    public Subscription subscription(int i) {
        return subscriptions[i];
    }

    /**
     * Installs the consumer offered whole tensors in place (or {@code null} for none). Set-up time,
     * before the agent runs, or on the agent thread.
     */
    public void inPlaceConsumer(InPlaceConsumer consumer) {
        inPlace.consumer(consumer);
    }

    /**
     * Counts the tensor bytes accepted from each peer into {@code traffic}, under this receiver's rank when
     * the peer's image appears. Set-up time, before the agent runs.
     */
    public void countReceivedInto(PeerTraffic traffic) {
        images.countInto(traffic, this::ownerRank);
    }

    /** Whether subscription {@code i} requires and checks CRC32C. */
    public boolean crcEnabled(int i) {
        return crcBySubscription[i];
    }

    public FrameDropCounters drops() {
        return counters.drops;
    }

    public ReceiveSlotPool pool() {
        return pool;
    }

    /** Chunks accepted into slots. */
    public long chunksReceived() {
        return counters.chunksReceived;
    }

    /** Whole tensors handed to the listener. */
    public long tensorsDelivered() {
        return counters.tensorsDelivered;
    }

    /** Times an image was held back because the budget had no room (back-pressure, not a drop). */
    public long backPressureAborts() {
        return counters.backPressureAborts;
    }

    /** Exceptions handed to the error handler. */
    public long errors() {
        return counters.errors;
    }

    public int ownerRank() {
        return ownerRank;
    }

    /** Sets this worker's rank (after assignment); any thread. */
    public void ownerRank(int rank) {
        this.ownerRank = rank;
    }

    public long epoch() {
        return epoch;
    }

    /** Raises the epoch (any thread): older frames are dropped, unfinished older tensors reclaimed. */
    public void epoch(long newEpoch) {
        this.epoch = newEpoch;
    }

    /** The job id frames must carry ({@link JobIdentity#NO_JOB} until a job is assigned). */
    public int jobId() {
        return jobId;
    }

    /**
     * Moves to {@code job} (any thread): frames of any other job id are refused ({@link DropReason#WRONG_JOB}),
     * frames of older epochs are stale.
     */
    public void job(JobIdentity job) {
        job(job.jobId(), job.epoch());
    }

    /** As {@link #job(JobIdentity)} by its parts ({@link JobIdentity#NO_JOB} and any epoch: frames of no job). */
    public void job(int newJobId, long newEpoch) {
        this.jobId = newJobId;
        epoch(newEpoch);
    }

    @Override
    public int doWork() {
        int work = 0;
        try {
            work += pool.drainReleases();
            work += images.drainEvents(epoch, imageHandler);
            long e = epoch;
            if (e != appliedEpoch) {
                appliedEpoch = e;
                reassembler.reclaimOlderThan(e);
                replays.forgetOlderThan(e);
            }
            Subscription[] subs = subscriptions;
            for (int i = 0; i < subs.length; i++) {
                polling(i);
                work += subs[i].controlledPoll(frames, FRAGMENT_LIMIT);
            }
        } catch (Throwable t) {
            counters.onError(t);
        }
        return work;
    }

    /** Points the parts at subscription {@code i}'s decoder, CRC rule and kind. */
    private void polling(int i) {
        frames.polling(decoders[i], crcBySubscription[i]);
        sources.polling(ipcBySubscription[i]);
        reassembler.polling(crcBySubscription[i], decoders[i].frame(), decoders[i].mac());
    }

    /**
     * Takes a delivered tensor from {@code sourceRank} with this kind and key, or {@code null} if none
     * is ready yet. A taken slot is not returned again; release it when done. Agent thread only.
     */
    public ReceiveSlot takeReady(int sourceRank, FrameKind kind, long tensorKey) {
        return reassembler.takeReady(sourceRank, kind, tensorKey);
    }

    /**
     * Runs this agent's duty cycle on the calling thread until the tensor is ready, then takes it
     * (for owners that drive the receiver themselves, e.g. a collective's loop). Agent thread only.
     *
     * @throws TransportTimeoutException if it does not arrive within {@code timeoutNs}
     */
    public ReceiveSlot awaitReady(int sourceRank, FrameKind kind, long tensorKey, long timeoutNs,
                                  IdleStrategy idleStrategy) {
        long deadlineNs = System.nanoTime() + timeoutNs;
        ReceiveSlot slot;
        while ((slot = takeReady(sourceRank, kind, tensorKey)) == null) {
            idleStrategy.idle(doWork());
            if (System.nanoTime() - deadlineNs > 0) {
                throw new TransportTimeoutException("tensor not received within timeoutNs=" + timeoutNs + ": source="
                    + sourceRank + ", kind=" + kind + ", key=" + TensorKey.toString(tensorKey) + ", receiver="
                        + roleName
                    + ", " + counters.drops);
            }
        }
        idleStrategy.reset();
        return slot;
    }

    @Override
    public void onClose() {
        close();
    }

    /**
     * Closes the subscriptions, unmaps the rings and frees slot memory (slots still held become invalid). Idempotent.
     */
    @Override
    public void close() {
        CloseHelper.closeAll(subscriptions);
        images.closeRings();
        pool.close();
    }

    /** Images coming and going (agent thread): peers connected and lost, and what a lost image leaves behind. */
    private final class ImageHandler implements ReceiverImages.Handler {
        @Override
        public void onImageAvailable(int rank, String sourceIdentity, boolean current) {
            if (current) {
                try {
                    listener.onPeerConnected(rank, sourceIdentity);
                } catch (Throwable t) {
                    counters.onError(t);
                }
            }
        }

        @Override
        public void onImageLost(ImageState st, int rank, int epochBits, boolean current) {
            if (st != null) {
                if (st.inMessage) {
                    st.inMessage = false;
                    inPlace.end(st, false);
                }
                st.closeRing();
            }
            reassembler.reclaimFromLostImage(rank, epochBits);
            if (current) {
                try {
                    listener.onPeerLost(rank);
                } catch (Throwable t) {
                    counters.onError(t);
                }
            }
        }
    }
}
