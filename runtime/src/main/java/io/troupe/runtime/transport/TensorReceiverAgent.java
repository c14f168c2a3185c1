package io.troupe.runtime.transport;

import io.aeron.Aeron;
import io.aeron.Image;
import io.aeron.Subscription;
import io.aeron.logbuffer.ControlledFragmentHandler;
import io.aeron.logbuffer.FrameDescriptor;
import io.aeron.logbuffer.Header;
import org.agrona.CloseHelper;
import org.agrona.DirectBuffer;
import org.agrona.ErrorHandler;
import org.agrona.UnsafeApi;
import org.agrona.collections.Long2ObjectHashMap;
import org.agrona.concurrent.Agent;
import org.agrona.concurrent.ManyToOneConcurrentArrayQueue;

/**
 * Receives tensor frames for one worker: polls its subscriptions (one IPC for same-node peers, one
 * UDP for remote peers), validates every frame, reassembles chunks in place into pooled
 * {@link ReceiveSlot}s keyed by (source rank, kind, tensor key, epoch), and tells its
 * {@link Listener} only when a whole tensor is there.
 *
 * <p>Aeron fragments of one chunk message are written straight from the term buffer into the slot
 * (no FragmentAssembler copy). An optional {@link InPlaceConsumer} may take whole tensors straight
 * from the term buffer instead (no slot at all). CRC32C is required and checked per channel
 * ({@link TransportSettings#crcEnabledFor}): on the UDP subscription by default, not on IPC.
 *
 * <p>When the receive budget is used up the agent stops consuming the image whose next tensor does not fit ({@code ABORT}), so that sender is back-pressured; nothing
 * is dropped silently. Every dropped frame is counted by {@link DropReason}.
 *
 * <p>Threading: {@link #doWork()}, {@link #takeReady} and the listener calls run on one thread (an
 * {@code AgentRunner}, or the owner's own duty cycle). {@link ReceiveSlot#release()},
 * {@link #epoch(long)} and the counters may be used from any thread. {@code doWork} never throws:
 * errors go to the injected {@link ErrorHandler}.
 */
public final class TensorReceiverAgent implements Agent, ControlledFragmentHandler, AutoCloseable {
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
    }

    private static final int FRAGMENT_LIMIT = 256;

    private record ImageEvent(boolean available, int sessionId, long correlationId, String sourceIdentity) {
    }

    private static final class ImageState {
        final long correlationId;
        final int rank;
        boolean inMessage;
        boolean skipping;
        ReceiveSlot slot;
        int slotGeneration;
        long writeOffset;
        long chunkStart;
        long chunkEnd;
        int chunkCrc;
        boolean crcPresent;
        LocalCopyLink link;
        IpcRing ring;
        boolean ringMissing;
        InPlaceConsumer.Sink sink;

        ImageState(long correlationId, int rank) {
            this.correlationId = correlationId;
            this.rank = rank;
        }
    }

    private final String roleName;
    private final LocalCopyRegistry localLinks;
    private final String ringDir;
    private final boolean[] ipcBySubscription;
    private boolean ipc;
    private final Subscription[] subscriptions;
    private final ReceiveSlotPool pool;
    private final Listener listener;
    private final ErrorHandler errorHandler;
    private final boolean[] crcBySubscription;
    private final TensorFrameDecoder[] decoders;
    private final FrameDropCounters drops = new FrameDropCounters();
    /** The decoder, flyweight and CRC rule of the subscription being polled now. */
    private TensorFrameDecoder decoder;
    private TensorFrameFlyweight frame;
    private boolean crcEnabled;
    private InPlaceConsumer inPlaceConsumer;
    private final Long2ObjectHashMap<ImageState> images = new Long2ObjectHashMap<>();
    private final ManyToOneConcurrentArrayQueue<ImageEvent> imageEvents = new ManyToOneConcurrentArrayQueue<>(1024);

    private volatile int ownerRank;
    private volatile long epoch;
    private long appliedEpoch;
    private Object lastImage;
    private ImageState lastState;

    private volatile long chunksReceived;
    private volatile long tensorsDelivered;
    private volatile long backPressureAborts;
    private volatile long errors;

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
        this.localLinks = localLinks;
        this.ringDir = ringDir;
        this.ipcBySubscription = new boolean[channels.length];
        this.pool = new ReceiveSlotPool(settings.receiveBudgetBytes(), settings.receiveSlotsMax());
        this.listener = listener;
        this.errorHandler = errorHandler;
        this.crcBySubscription = new boolean[channels.length];
        this.decoders = new TensorFrameDecoder[channels.length];
        for (int i = 0; i < channels.length; i++) {
            ipcBySubscription[i] = TransportChannels.isIpc(channels[i]);
            crcBySubscription[i] = settings.crcEnabledFor(ipcBySubscription[i]);
            decoders[i] = new TensorFrameDecoder(crcBySubscription[i]);
        }
        this.decoder = decoders[0];
        this.frame = decoder.frame();
        this.crcEnabled = crcBySubscription[0];
        this.ownerRank = ownerRank;
        this.epoch = epoch;
        this.appliedEpoch = epoch;
        this.subscriptions = new Subscription[channels.length];
        try {
            for (int i = 0; i < channels.length; i++) {
                subscriptions[i] = aeron.addSubscription(channels[i], streamId, this::onAvailableImage,
                    this::onUnavailableImage);
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
        this.inPlaceConsumer = consumer;
    }

    /** Whether subscription {@code i} requires and checks CRC32C. */
    public boolean crcEnabled(int i) {
        return crcBySubscription[i];
    }

    public FrameDropCounters drops() {
        return drops;
    }

    public ReceiveSlotPool pool() {
        return pool;
    }

    /** Chunks accepted into slots. */
    public long chunksReceived() {
        return chunksReceived;
    }

    /** Whole tensors handed to the listener. */
    public long tensorsDelivered() {
        return tensorsDelivered;
    }

    /** Times an image was held back because the budget had no room (back-pressure, not a drop). */
    public long backPressureAborts() {
        return backPressureAborts;
    }

    /** Exceptions handed to the error handler. */
    public long errors() {
        return errors;
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

    @Override
    public int doWork() {
        int work = 0;
        try {
            work += pool.drainReleases();
            work += drainImageEvents();
            long e = epoch;
            if (e != appliedEpoch) {
                appliedEpoch = e;
                reclaimOlderThan(e);
            }
            Subscription[] subs = subscriptions;
            for (int i = 0; i < subs.length; i++) {
                decoder = decoders[i];
                frame = decoder.frame();
                crcEnabled = crcBySubscription[i];
                ipc = ipcBySubscription[i];
                work += subs[i].controlledPoll(this, FRAGMENT_LIMIT);
            }
        } catch (Throwable t) {
            onError(t);
        }
        return work;
    }

    /**
     * Takes a delivered tensor from {@code sourceRank} with this kind and key, or {@code null} if none
     * is ready yet. A taken slot is not returned again; release it when done. Agent thread only.
     */
    public ReceiveSlot takeReady(int sourceRank, FrameKind kind, long tensorKey) {
        for (int i = 0, n = pool.activeCount(); i < n; i++) {
            ReceiveSlot s = pool.active(i);
            if (s.state == ReceiveSlot.READY && s.sourceRank == sourceRank && s.kind == kind
                && s.tensorKey == tensorKey) {
                s.state = ReceiveSlot.TAKEN;
                return s;
            }
        }
        return null;
    }

    /**
     * Runs this agent's duty cycle on the calling thread until the tensor is ready, then takes it
     * (for owners that drive the receiver themselves, e.g. a collective's loop). Agent thread only.
     *
     * @throws TransportTimeoutException if it does not arrive within {@code timeoutNs}
     */
    public ReceiveSlot awaitReady(int sourceRank, FrameKind kind, long tensorKey, long timeoutNs,
                                  org.agrona.concurrent.IdleStrategy idleStrategy) {
        long deadlineNs = System.nanoTime() + timeoutNs;
        ReceiveSlot slot;
        while ((slot = takeReady(sourceRank, kind, tensorKey)) == null) {
            idleStrategy.idle(doWork());
            if (System.nanoTime() - deadlineNs > 0) {
                throw new TransportTimeoutException("tensor not received within timeoutNs=" + timeoutNs + ": source="
                    + sourceRank + ", kind=" + kind + ", key=" + TensorKey.toString(tensorKey) + ", receiver=" + roleName
                    + ", " + drops);
            }
        }
        idleStrategy.reset();
        return slot;
    }

    @Override
    public void onClose() {
        close();
    }

    /** Closes the subscriptions, unmaps the rings and frees slot memory (slots still held become invalid). Idempotent. */
    @Override
    public void close() {
        CloseHelper.closeAll(subscriptions);
        for (ImageState st : images.values()) {
            closeRing(st);
        }
        pool.close();
    }

    private static void closeRing(ImageState st) {
        IpcRing ring = st.ring;
        if (ring != null) {
            st.ring = null;
            ring.close();
        }
    }

    private void onError(Throwable t) {
        errors++;
        errorHandler.onError(t);
    }

    // ------------------------------------------------------------------ liveness (client conductor thread)

    private void onAvailableImage(Image image) {
        if (!imageEvents.offer(new ImageEvent(true, image.sessionId(), image.correlationId(), image.sourceIdentity()))) {
            errorHandler.onError(new IllegalStateException("image event queue full: " + roleName));
        }
    }

    private void onUnavailableImage(Image image) {
        if (!imageEvents.offer(new ImageEvent(false, image.sessionId(), image.correlationId(), image.sourceIdentity()))) {
            errorHandler.onError(new IllegalStateException("image event queue full: " + roleName));
        }
    }

    private int drainImageEvents() {
        int n = 0;
        ImageEvent ev;
        while ((ev = imageEvents.poll()) != null) {
            n++;
            int rank = SessionIds.rankOf(ev.sessionId());
            // An image of an older epoch (a finished or re-planned job's publication) coming or
            // going says nothing about the peer in this epoch: only current-epoch images are news.
            boolean current = SessionIds.isCurrentOrLater(ev.sessionId(), epoch);
            if (ev.available()) {
                if (current) {
                    notifyConnected(rank, ev.sourceIdentity());
                }
            } else {
                ImageState st = images.remove(ev.correlationId());
                if (st != null && st.inMessage) {
                    st.inMessage = false;
                    endInPlace(st, false);
                }
                if (st != null) {
                    closeRing(st);
                }
                lastImage = null;
                lastState = null;
                reclaimFromLostImage(rank, SessionIds.epochBitsOf(ev.sessionId()));
                if (current) {
                    notifyLost(rank);
                }
            }
        }
        return n;
    }

    private void notifyConnected(int rank, String sourceIdentity) {
        try {
            listener.onPeerConnected(rank, sourceIdentity);
        } catch (Throwable t) {
            onError(t);
        }
    }

    private void notifyLost(int rank) {
        try {
            listener.onPeerLost(rank);
        } catch (Throwable t) {
            onError(t);
        }
    }

    /** Recycles the unfinished tensors a lost image was filling (same rank and epoch bits as its session). */
    private void reclaimFromLostImage(int rank, int epochBits) {
        for (int i = pool.activeCount() - 1; i >= 0; i--) {
            ReceiveSlot s = pool.active(i);
            if (s.state == ReceiveSlot.FILLING && s.sourceRank == rank && SessionIds.epochBits(s.epoch) == epochBits) {
                pool.recycle(s);
            }
        }
    }

    /** Recycles unfinished tensors of epochs below {@code minEpoch} (they can no longer complete). */
    private void reclaimOlderThan(long minEpoch) {
        for (int i = pool.activeCount() - 1; i >= 0; i--) {
            ReceiveSlot s = pool.active(i);
            if (s.state == ReceiveSlot.FILLING && s.epoch < minEpoch) {
                pool.recycle(s);
            }
        }
    }

    // ------------------------------------------------------------------ frames (agent thread)

    private ImageState stateFor(Header header) {
        Object image = header.context();
        if (image == lastImage && lastState != null) {
            return lastState;
        }
        long id = image instanceof Image ? ((Image) image).correlationId() : header.sessionId();
        ImageState st = images.get(id);
        if (st == null) {
            st = new ImageState(id, SessionIds.rankOf(header.sessionId())); // once per image
            images.put(id, st);
        }
        lastImage = image;
        lastState = st;
        return st;
    }

    /**
     * Every handled message's last fragment commits the image position ({@code COMMIT}) instead of
     * letting it wait for the end of the poll: a poll may take up to {@link #FRAGMENT_LIMIT}
     * fragments (megabytes reduced in place), and the sender's flow-control window only moves with
     * this position.
     */
    @Override
    public Action onFragment(DirectBuffer buffer, int offset, int length, Header header) {
        Action action = handleFragment(buffer, offset, length, header);
        return action == Action.CONTINUE && (header.flags() & FrameDescriptor.END_FRAG_FLAG) != 0 ? Action.COMMIT
            : action;
    }

    private Action handleFragment(DirectBuffer buffer, int offset, int length, Header header) {
        ImageState st = stateFor(header);
        byte flags = header.flags();
        boolean end = (flags & FrameDescriptor.END_FRAG_FLAG) != 0;
        if ((flags & FrameDescriptor.BEGIN_FRAG_FLAG) != 0) {
            if (st.inMessage) {
                abandon(st, DropReason.ORPHAN_FRAGMENT, false);
            }
            st.skipping = false;
            return onFirstFragment(st, buffer, offset, length, end, header);
        }
        if (!st.inMessage) {
            if (!st.skipping) {
                drops.increment(DropReason.ORPHAN_FRAGMENT);
            }
            st.skipping = !end;
            return Action.CONTINUE;
        }
        if (st.sink != null) {
            onInPlaceContinuation(st, buffer, offset, length, end);
            return Action.CONTINUE;
        }
        onContinuation(st, buffer, offset, length, end);
        return Action.CONTINUE;
    }

    private Action drop(ImageState st, DropReason reason, boolean end) {
        drops.increment(reason);
        st.skipping = !end;
        return Action.CONTINUE;
    }

    /**
     * Hands back, unread, what a well-formed frame this receiver refuses (a stale epoch, say) points at: the
     * ring bytes it names, or the same-JVM sender's published tensor. Either was the sender's to reuse once
     * the frame was read, used or not. Bounds and sequence are checked as for a frame that is used; a frame
     * naming bytes outside the ring, or a sequence not published, hands back nothing.
     */
    private void releaseRefused(ImageState st, Header header, TensorFrameDecoder d) {
        int reference = d.frame().referenceSequence();
        if (d.byRing()) {
            IpcRing ring = ringHolding(st, header, reference, d.chunkBytes());
            if (ring != null) {
                ring.consumedTo(ring.startOf(reference) + d.chunkBytes());
            }
        } else {
            LocalCopyLink link = publishedLink(st, header, reference, d.totalBytes());
            if (link != null) {
                link.decline(reference);
            }
        }
    }

    /** The image's ring if this is IPC, its sender has one and {@code [offset, offset+bytes)} lies in it; else null. */
    private IpcRing ringHolding(ImageState st, Header header, int offset, int bytes) {
        IpcRing ring = ipc ? ringFor(st, header) : null;
        return ring != null && ring.holds(offset, bytes) ? ring : null;
    }

    /** The image's in-process link if it has {@code sequence} published for exactly {@code totalBytes}; else null. */
    private LocalCopyLink publishedLink(ImageState st, Header header, int sequence, long totalBytes) {
        LocalCopyLink link = linkFor(st, header);
        return link != null && link.isPublished(sequence, totalBytes) ? link : null;
    }

    /** The in-process link of the image's sender, cached once found (see {@link LocalCopyLink}). */
    private LocalCopyLink linkFor(ImageState st, Header header) {
        LocalCopyLink link = st.link;
        if (link == null && localLinks != null) {
            link = localLinks.find(header.streamId(), header.sessionId());
            st.link = link;
        }
        return link;
    }

    /** The ring of the image's sender (another process on this host), mapped once found (see {@link IpcRing}). */
    private IpcRing ringFor(ImageState st, Header header) {
        IpcRing ring = st.ring;
        if (ring == null && !st.ringMissing && ringDir != null) {
            ring = IpcRing.open(ringDir, header.streamId(), header.sessionId());
            st.ring = ring;
            st.ringMissing = ring == null; // looked up once per image, not once per (forged) frame
        }
        return ring;
    }

    private Action onFirstFragment(ImageState st, DirectBuffer buffer, int offset, int length, boolean end,
                                   Header header) {
        TensorFrameDecoder d = decoder;
        DropReason reason = d.decode(buffer, offset, length, end, epoch, ownerRank, st.rank, pool.budgetBytes());
        if (reason != null) {
            if (reason.wellFormed() && (d.byRing() || d.byReference())) {
                releaseRefused(st, header, d); // a stale epoch's sender must not wait out its deadline
            }
            return drop(st, reason, end);
        }
        TensorFrameFlyweight f = d.frame();
        long totalBytes = d.totalBytes();
        long chunkOffset = d.chunkOffset();
        int chunkBytes = d.chunkBytes();
        int payload = d.payloadBytes();
        LocalCopyLink link = null;
        if (d.byReference()) {
            link = d.byRing() || chunkOffset != 0 ? null : publishedLink(st, header, f.referenceSequence(), totalBytes);
            if (link == null) {
                return drop(st, DropReason.BAD_REFERENCE, end);
            }
        }
        IpcRing ring = null;
        long ringAddress = 0;
        long ringEnd = 0;
        if (d.byRing()) {
            int ringOffset = f.referenceSequence();
            ring = ringHolding(st, header, ringOffset, chunkBytes);
            if (ring == null) {
                return drop(st, DropReason.BAD_REFERENCE, end);
            }
            ringAddress = ring.address(ringOffset);
            ringEnd = ring.startOf(ringOffset) + chunkBytes;
        }
        if (link == null && inPlaceConsumer != null && chunkOffset == 0 && chunkBytes == totalBytes
            && !(crcEnabled && d.crcPresent()) && buffer.byteArray() == null
            && (end || payload % FrameDescriptor.FRAME_ALIGNMENT == 0)) {
            InPlaceConsumer.Sink sink = offerInPlace(st.rank, d.kind(), f.tensorKey(), f.step(), d, totalBytes);
            if (sink == InPlaceConsumer.LATER) {
                return Action.ABORT; // nothing of this message is consumed: offered again on a later poll
            }
            if (sink != null) {
                if (ring != null) {
                    onRingInPlace(st, sink, ringAddress, chunkBytes);
                    ring.consumedTo(ringEnd);
                    return Action.CONTINUE;
                }
                return onInPlaceFirst(st, sink, buffer, offset, payload, chunkBytes, end);
            }
        }
        Action action = placeInSlot(st, d, buffer, offset, end, link, ringAddress);
        if (ring != null && action != Action.ABORT) {
            ring.consumedTo(ringEnd); // used or dropped: either way the sender may reuse the bytes
        }
        return action;
    }

    /**
     * Reassembles the decoded chunk into its slot (a new one for a first chunk), taking its bytes
     * from the frame, from a same-JVM sender's memory ({@code link}) or from a ring
     * ({@code ringAddress != 0}); {@code ABORT} when the budget has no room for a new tensor.
     */
    private Action placeInSlot(ImageState st, TensorFrameDecoder d, DirectBuffer buffer, int offset, boolean end,
                               LocalCopyLink link, long ringAddress) {
        TensorFrameFlyweight f = d.frame();
        FrameKind kind = d.kind();
        int ndims = d.ndims();
        long totalBytes = d.totalBytes();
        long chunkOffset = d.chunkOffset();
        int chunkBytes = d.chunkBytes();
        long frameEpoch = d.epoch();
        int source = st.rank;
        long key = f.tensorKey();
        ReceiveSlot slot = findFilling(st, source, kind, key, frameEpoch);
        if (slot != null) {
            if (!slot.sameTensor(f.dtypeCode(), f, ndims, totalBytes)) {
                return drop(st, DropReason.TENSOR_MISMATCH, end);
            }
            if (chunkOffset != slot.receivedBytes) {
                return drop(st, DropReason.OUT_OF_ORDER, end);
            }
        } else {
            if (chunkOffset != 0) {
                return drop(st, DropReason.OUT_OF_ORDER, end);
            }
            slot = pool.acquire(totalBytes);
            if (slot == null) {
                backPressureAborts++;
                return Action.ABORT;
            }
            slot.begin(source, kind, key, frameEpoch, f.step(), d.dtype(), f, ndims, totalBytes);
        }
        st.slot = slot;
        st.slotGeneration = slot.generation;
        if (link != null) {
            if (!link.beginCopy(f.referenceSequence())) { // the sender revoked it meanwhile
                pool.recycle(slot);
                return drop(st, DropReason.BAD_REFERENCE, end);
            }
            UnsafeApi.copyMemory(link.address(), slot.address, totalBytes);
            link.endCopy();
            completeChunk(slot, 0, (int) totalBytes, false, 0);
            return Action.CONTINUE;
        }
        if (ringAddress != 0) {
            UnsafeApi.copyMemory(ringAddress, slot.address + chunkOffset, chunkBytes);
            completeChunk(slot, chunkOffset, chunkBytes, d.crcPresent(), f.chunkCrc());
            return Action.CONTINUE;
        }
        int payload = d.payloadBytes();
        copy(buffer, offset + TensorFrameDescriptor.HEADER_LENGTH, slot.address + chunkOffset, payload);
        if (end) {
            completeChunk(slot, chunkOffset, chunkBytes, d.crcPresent(), f.chunkCrc());
        } else {
            st.inMessage = true;
            st.writeOffset = chunkOffset + payload;
            st.chunkStart = chunkOffset;
            st.chunkEnd = chunkOffset + chunkBytes;
            st.chunkCrc = f.chunkCrc();
            st.crcPresent = d.crcPresent();
        }
        return Action.CONTINUE;
    }

    /** A whole by-ring tensor handed to the in-place sink in one piece. */
    private void onRingInPlace(ImageState st, InPlaceConsumer.Sink sink, long ringAddress, int chunkBytes) {
        st.sink = sink;
        try {
            sink.onData(ringAddress, 0, chunkBytes);
        } catch (Throwable t) {
            onError(t);
        }
        chunksReceived++;
        tensorsDelivered++;
        endInPlace(st, true);
    }

    private InPlaceConsumer.Sink offerInPlace(int source, FrameKind kind, long key, long step, TensorFrameDecoder d,
                                              long totalBytes) {
        try {
            return inPlaceConsumer.onWholeTensor(source, kind, key, step, d.dtype(), totalBytes);
        } catch (Throwable t) {
            onError(t);
            return null;
        }
    }

    private Action onInPlaceFirst(ImageState st, InPlaceConsumer.Sink sink, DirectBuffer buffer, int offset,
                                  int payload, int chunkBytes, boolean end) {
        st.sink = sink;
        st.inMessage = true;
        st.writeOffset = 0;
        st.chunkStart = 0;
        st.chunkEnd = chunkBytes;
        if (payload > chunkBytes) {
            abandon(st, DropReason.CHUNK_LENGTH_MISMATCH, end);
            return Action.CONTINUE;
        }
        onInPlaceContinuation(st, buffer, offset + TensorFrameDescriptor.HEADER_LENGTH, payload, end);
        return Action.CONTINUE;
    }

    /** Hands one fragment's payload to the in-place sink; at the end, tells it whether the tensor is whole. */
    private void onInPlaceContinuation(ImageState st, DirectBuffer buffer, int offset, int length, boolean end) {
        if (st.writeOffset + length > st.chunkEnd) {
            abandon(st, DropReason.CHUNK_LENGTH_MISMATCH, end);
            return;
        }
        if (length > 0) {
            try {
                st.sink.onData(buffer.addressOffset() + offset, st.writeOffset, length);
            } catch (Throwable t) {
                onError(t);
            }
        }
        st.writeOffset += length;
        if (end) {
            st.inMessage = false;
            if (st.writeOffset != st.chunkEnd) {
                drops.increment(DropReason.CHUNK_LENGTH_MISMATCH);
                endInPlace(st, false);
            } else {
                chunksReceived++;
                tensorsDelivered++;
                endInPlace(st, true);
            }
        }
    }

    /** Ends the in-place tensor of an image, if any, telling its sink how it ended. */
    private void endInPlace(ImageState st, boolean complete) {
        InPlaceConsumer.Sink sink = st.sink;
        if (sink != null) {
            st.sink = null;
            try {
                sink.onEnd(complete);
            } catch (Throwable t) {
                onError(t);
            }
        }
    }

    private void onContinuation(ImageState st, DirectBuffer buffer, int offset, int length, boolean end) {
        ReceiveSlot slot = st.slot;
        if (slot.generation != st.slotGeneration || slot.state != ReceiveSlot.FILLING) {
            st.inMessage = false;
            drop(st, DropReason.OUT_OF_ORDER, end);
            return;
        }
        if (st.writeOffset + length > st.chunkEnd) {
            abandon(st, DropReason.CHUNK_LENGTH_MISMATCH, end);
            return;
        }
        copy(buffer, offset, slot.address + st.writeOffset, length);
        st.writeOffset += length;
        if (end) {
            st.inMessage = false;
            if (st.writeOffset != st.chunkEnd) {
                drops.increment(DropReason.CHUNK_LENGTH_MISMATCH);
                pool.recycle(slot);
            } else {
                completeChunk(slot, st.chunkStart, (int) (st.chunkEnd - st.chunkStart), st.crcPresent, st.chunkCrc);
            }
        }
    }

    /** Drops the message in progress on an image and the tensor it was filling. */
    private void abandon(ImageState st, DropReason reason, boolean end) {
        drops.increment(reason);
        if (st.sink != null) {
            st.inMessage = false;
            st.skipping = !end;
            endInPlace(st, false);
            return;
        }
        ReceiveSlot slot = st.slot;
        if (slot != null && slot.generation == st.slotGeneration && slot.state == ReceiveSlot.FILLING) {
            pool.recycle(slot);
        }
        st.inMessage = false;
        st.skipping = !end;
    }

    private ReceiveSlot findFilling(ImageState st, int source, FrameKind kind, long key, long frameEpoch) {
        ReceiveSlot s = st.slot;
        if (s != null && s.generation == st.slotGeneration && matches(s, source, kind, key, frameEpoch)) {
            return s;
        }
        for (int i = 0, n = pool.activeCount(); i < n; i++) {
            s = pool.active(i);
            if (matches(s, source, kind, key, frameEpoch)) {
                return s;
            }
        }
        return null;
    }

    private static boolean matches(ReceiveSlot s, int source, FrameKind kind, long key, long frameEpoch) {
        return s.state == ReceiveSlot.FILLING && s.sourceRank == source && s.tensorKey == key && s.kind == kind
            && s.epoch == frameEpoch;
    }

    private static void copy(DirectBuffer src, int srcIndex, long dstAddress, int length) {
        if (length > 0) {
            UnsafeApi.copyMemory(src.byteArray(), src.addressOffset() + srcIndex, null, dstAddress, length);
        }
    }

    private void completeChunk(ReceiveSlot slot, long chunkOffset, int chunkBytes, boolean crcPresent, int crc) {
        if (crcEnabled && crcPresent && frame.crc32c(slot.address + chunkOffset, chunkBytes) != crc) {
            drops.increment(DropReason.BAD_CHUNK_CRC);
            pool.recycle(slot);
            return;
        }
        slot.receivedBytes = chunkOffset + chunkBytes;
        chunksReceived++;
        if (slot.receivedBytes == slot.totalBytes) {
            slot.state = ReceiveSlot.READY;
            tensorsDelivered++;
            try {
                listener.onTensorReady(slot);
            } catch (Throwable t) {
                onError(t);
            }
        }
    }
}
