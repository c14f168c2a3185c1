package io.troupe.runtime.transport;

import io.aeron.logbuffer.ControlledFragmentHandler.Action;
import org.agrona.DirectBuffer;
import org.agrona.UnsafeApi;

/**
 * Reassembles chunks into pooled {@link ReceiveSlot}s keyed by (source rank, kind, tensor key,
 * epoch): a chunk's bytes come from the frame's fragments, from a same-JVM sender's memory or from
 * a same-host ring; each chunk's CRC32C is checked where its subscription requires it; a whole
 * tensor goes to the {@link TensorReceiverAgent.Listener}. Agent thread only.
 */
final class SlotReassembler {
    private final ReceiveSlotPool pool;
    private final TensorReceiverAgent.Listener listener;
    private final ReceiverCounters counters;
    /** The counters of the authenticated senders, checked again as a tagged chunk of many fragments completes. */
    private final ReplayGuard replays;
    /** The CRC rule and flyweight of the subscription being polled. */
    private boolean crcEnabled;
    private TensorFrameFlyweight frame;
    /** The tag checker of the subscription being polled; {@code null} where frames are not authenticated. */
    private FrameMac mac;

    SlotReassembler(ReceiveSlotPool pool, TensorReceiverAgent.Listener listener, ReceiverCounters counters,
                    ReplayGuard replays) {
        this.pool = pool;
        this.listener = listener;
        this.counters = counters;
        this.replays = replays;
    }

    /** Sets the CRC rule, the flyweight (its CRC32C) and the tag checker of the subscription polled next. */
    void polling(boolean crcEnabledThere, TensorFrameFlyweight frameThere, FrameMac macThere) {
        this.crcEnabled = crcEnabledThere;
        this.frame = frameThere;
        this.mac = macThere;
    }

    /**
     * Reassembles the decoded chunk into its slot (a new one for a first chunk), taking its bytes
     * from the frame, from a same-JVM sender's memory ({@code link}) or from a ring
     * ({@code ringAddress != 0}); {@code ABORT} when the budget has no room for a new tensor.
     */
    Action place(ImageState st, TensorFrameDecoder d, DirectBuffer buffer, int offset, boolean end, LocalCopyLink link,
                 long ringAddress) {
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
                return st.drop(counters.drops, DropReason.TENSOR_MISMATCH, end);
            }
            if (chunkOffset != slot.receivedBytes) {
                return st.drop(counters.drops, DropReason.OUT_OF_ORDER, end);
            }
        } else {
            if (chunkOffset != 0) {
                return st.drop(counters.drops, DropReason.OUT_OF_ORDER, end);
            }
            slot = pool.acquire(totalBytes);
            if (slot == null) {
                counters.backPressureAborts++;
                return Action.ABORT;
            }
            slot.begin(source, kind, key, frameEpoch, f.step(), d.dtype(), f, ndims, totalBytes);
        }
        st.slot = slot;
        st.slotGeneration = slot.generation;
        if (link != null) {
            if (!link.beginCopy(f.referenceSequence())) { // the sender revoked it meanwhile
                pool.recycle(slot);
                return st.drop(counters.drops, DropReason.BAD_REFERENCE, end);
            }
            UnsafeApi.copyMemory(link.address(), slot.address, totalBytes);
            link.endCopy();
            completeChunk(st, slot, 0, (int) totalBytes, false, 0);
            return Action.CONTINUE;
        }
        if (ringAddress != 0) {
            UnsafeApi.copyMemory(ringAddress, slot.address + chunkOffset, chunkBytes);
            completeChunk(st, slot, chunkOffset, chunkBytes, d.crcPresent(), f.chunkCrc());
            return Action.CONTINUE;
        }
        int payload = d.payloadBytes();
        copy(buffer, offset + TensorFrameDescriptor.HEADER_LENGTH, slot.address + chunkOffset, payload);
        if (end) {
            st.macProven |= mac != null; // checked whole on arrival
            completeChunk(st, slot, chunkOffset, chunkBytes, d.crcPresent(), f.chunkCrc());
        } else {
            st.inMessage = true;
            st.writeOffset = chunkOffset + payload;
            st.chunkStart = chunkOffset;
            st.chunkEnd = chunkOffset + chunkBytes;
            st.chunkCrc = f.chunkCrc();
            st.crcPresent = d.crcPresent();
            st.macPending = d.macPending();
            if (st.macPending) {
                d.mac().saveState(st.macState);
                st.macTag = FrameMac.tagIn(f);
                st.macJobId = d.jobId();
                st.macEpoch = frameEpoch;
                st.macCounter = f.frameCounter();
            }
        }
        return Action.CONTINUE;
    }

    /** A later fragment of the chunk in progress on an image, copied into its slot. */
    void continuation(ImageState st, DirectBuffer buffer, int offset, int length, boolean end) {
        ReceiveSlot slot = st.slot;
        if (slot.generation != st.slotGeneration || slot.state != ReceiveSlot.FILLING) {
            st.inMessage = false;
            st.drop(counters.drops, DropReason.OUT_OF_ORDER, end);
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
                counters.drops.increment(DropReason.CHUNK_LENGTH_MISMATCH);
                pool.recycle(slot);
            } else if (st.macPending && !tagMatches(st, slot)) {
                counters.drops.increment(DropReason.BAD_MAC);
                if (st.macProven) { // a key holder's chunk damaged on the way: whoever waits may fail now
                    reportCorrupt(slot, DropReason.BAD_MAC);
                } else { // possibly a stranger's: it says nothing about the real sender's tensor
                    pool.recycle(slot);
                }
            } else if (st.macPending && !replays.fresh(st.macJobId, st.macEpoch, st.rank, st.macCounter)) {
                counters.drops.increment(DropReason.REPLAYED); // another image took this counter meanwhile
                pool.recycle(slot);
            } else {
                if (st.macPending) {
                    replays.accept(st.macJobId, st.macEpoch, st.rank, st.macCounter);
                }
                st.macProven |= st.macPending;
                completeChunk(st, slot, st.chunkStart, (int) (st.chunkEnd - st.chunkStart), st.crcPresent,
                    st.chunkCrc);
            }
        }
    }

    /**
     * Tells the listener at once of a key holder's frame damaged in transit ({@link DropReason#damaged}), refused
     * on arrival for {@code reason}: its kind and key as its header gives them, or a null kind when they are not
     * known.
     */
    void reportDamaged(int source, FrameKind kind, long key, DropReason reason) {
        try {
            listener.onTensorCorrupted(source, kind, key, reason);
        } catch (Throwable t) {
            counters.onError(t);
        }
    }

    /** Recycles the slot of a tensor that can never complete and tells the listener at once. */
    private void reportCorrupt(ReceiveSlot slot, DropReason reason) {
        int source = slot.sourceRank;
        FrameKind kind = slot.kind;
        long key = slot.tensorKey;
        pool.recycle(slot);
        try {
            listener.onTensorCorrupted(source, kind, key, reason);
        } catch (Throwable t) {
            counters.onError(t);
        }
    }

    /** Whether the whole chunk in {@code slot} has the tag its first fragment carried. */
    private boolean tagMatches(ImageState st, ReceiveSlot slot) {
        FrameMac m = mac;
        m.restoreState(st.macState);
        return m.finish(null, slot.address + st.chunkStart, (int) (st.chunkEnd - st.chunkStart)) == st.macTag;
    }

    /** Drops the chunk in progress on an image and the tensor it was filling. */
    void abandon(ImageState st, DropReason reason, boolean end) {
        counters.drops.increment(reason);
        ReceiveSlot slot = st.slot;
        if (slot != null && slot.generation == st.slotGeneration && slot.state == ReceiveSlot.FILLING) {
            pool.recycle(slot);
        }
        st.inMessage = false;
        st.skipping = !end;
    }

    /** Takes a delivered tensor from {@code sourceRank} with this kind and key, or null if none is ready. */
    ReceiveSlot takeReady(int sourceRank, FrameKind kind, long tensorKey) {
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

    /** Recycles the unfinished tensors a lost image was filling (same rank and epoch bits as its session). */
    void reclaimFromLostImage(int rank, int epochBits) {
        for (int i = pool.activeCount() - 1; i >= 0; i--) {
            ReceiveSlot s = pool.active(i);
            if (s.state == ReceiveSlot.FILLING && s.sourceRank == rank && SessionIds.epochBits(s.epoch) == epochBits) {
                pool.recycle(s);
            }
        }
    }

    /** Recycles unfinished tensors of epochs below {@code minEpoch} (they can no longer complete). */
    void reclaimOlderThan(long minEpoch) {
        for (int i = pool.activeCount() - 1; i >= 0; i--) {
            ReceiveSlot s = pool.active(i);
            if (s.state == ReceiveSlot.FILLING && s.epoch < minEpoch) {
                pool.recycle(s);
            }
        }
    }

    private ReceiveSlot findFilling(ImageState st, int source, FrameKind kind, long key, long frameEpoch) {
        ReceiveSlot s = st.slot;
        if (s != null && s.generation == st.slotGeneration && matches(s, source, kind, key, frameEpoch)) {
            return s;
        }
        if (mac != null) {
            return null; // authenticated chunks continue only a tensor their own image started
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

    private void completeChunk(ImageState st, ReceiveSlot slot, long chunkOffset, int chunkBytes, boolean crcPresent,
                               int crc) {
        if (crcEnabled && crcPresent && frame.crc32c(slot.address + chunkOffset, chunkBytes) != crc) {
            counters.drops.increment(DropReason.BAD_CHUNK_CRC);
            reportCorrupt(slot, DropReason.BAD_CHUNK_CRC);
            return;
        }
        slot.receivedBytes = chunkOffset + chunkBytes;
        counters.chunksReceived++;
        if (st.receivedBytes != null) {
            st.receivedBytes.add(chunkBytes);
        }
        if (slot.receivedBytes == slot.totalBytes) {
            slot.state = ReceiveSlot.READY;
            counters.tensorsDelivered++;
            try {
                listener.onTensorReady(slot);
            } catch (Throwable t) {
                counters.onError(t);
            }
        }
    }
}
