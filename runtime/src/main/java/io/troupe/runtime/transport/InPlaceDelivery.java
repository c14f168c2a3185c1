package io.troupe.runtime.transport;

import io.aeron.logbuffer.FrameDescriptor;
import org.agrona.DirectBuffer;

/**
 * Whole tensors handed straight from the term buffer (or a same-host ring) to an
 * {@link InPlaceConsumer}'s sink, with no slot at all: which frames may be offered, the offer, and
 * the tensor's fragments going to the sink until it ends, whole or not. Agent thread only.
 */
final class InPlaceDelivery {
    private final ReceiverCounters counters;
    private InPlaceConsumer consumer;

    InPlaceDelivery(ReceiverCounters counters) {
        this.counters = counters;
    }

    /** Installs the consumer offered whole tensors ({@code null}: none). */
    void consumer(InPlaceConsumer c) {
        this.consumer = c;
    }

    /**
     * Whether the decoded frame may be offered in place: a consumer is installed, the frame is the
     * whole tensor in one chunk, no CRC is to be checked over it ({@code crcEnabled} on its
     * subscription) nor a tag (a tagged frame in one fragment was checked already), it lies in
     * off-heap memory, and it is not split mid-frame.
     */
    boolean mayOffer(TensorFrameDecoder d, DirectBuffer buffer, boolean end, boolean crcEnabled) {
        return consumer != null && d.chunkOffset() == 0 && d.chunkBytes() == d.totalBytes()
            && !(crcEnabled && d.crcPresent()) && !d.macPending() && buffer.byteArray() == null
            && (end || d.payloadBytes() % FrameDescriptor.FRAME_ALIGNMENT == 0);
    }

    /**
     * The consumer's answer to the decoded whole tensor from {@code source}: a sink to take it,
     * {@link InPlaceConsumer#LATER}, or null (a consumer that throws: null, the error counted).
     */
    InPlaceConsumer.Sink offer(int source, TensorFrameDecoder d) {
        try {
            TensorFrameFlyweight f = d.frame();
            return consumer.onWholeTensor(source, d.kind(), f.tensorKey(), f.step(), d.dtype(), d.totalBytes());
        } catch (Throwable t) {
            counters.onError(t);
            return null;
        }
    }

    /** A whole by-ring tensor handed to the sink in one piece. */
    void deliverFromRing(ImageState st, InPlaceConsumer.Sink sink, long ringAddress, int chunkBytes) {
        st.sink = sink;
        try {
            sink.onData(ringAddress, 0, chunkBytes);
        } catch (Throwable t) {
            counters.onError(t);
        }
        counters.chunksReceived++;
        counters.tensorsDelivered++;
        if (st.receivedBytes != null) {
            st.receivedBytes.add(chunkBytes);
        }
        end(st, true);
    }

    /** The first fragment of a tensor the sink takes: the frame at {@code offset}, {@code payload} bytes of it. */
    void first(ImageState st, InPlaceConsumer.Sink sink, DirectBuffer buffer, int offset, int payload, int chunkBytes,
               boolean end) {
        st.sink = sink;
        st.inMessage = true;
        st.writeOffset = 0;
        st.chunkStart = 0;
        st.chunkEnd = chunkBytes;
        if (payload > chunkBytes) {
            abandon(st, DropReason.CHUNK_LENGTH_MISMATCH, end);
            return;
        }
        continuation(st, buffer, offset + TensorFrameDescriptor.HEADER_LENGTH, payload, end);
    }

    /** Hands one fragment's payload to the sink; at the end, tells it whether the tensor is whole. */
    void continuation(ImageState st, DirectBuffer buffer, int offset, int length, boolean end) {
        if (st.writeOffset + length > st.chunkEnd) {
            abandon(st, DropReason.CHUNK_LENGTH_MISMATCH, end);
            return;
        }
        if (length > 0) {
            try {
                st.sink.onData(buffer.addressOffset() + offset, st.writeOffset, length);
            } catch (Throwable t) {
                counters.onError(t);
            }
        }
        st.writeOffset += length;
        if (end) {
            st.inMessage = false;
            if (st.writeOffset != st.chunkEnd) {
                counters.drops.increment(DropReason.CHUNK_LENGTH_MISMATCH);
                end(st, false);
            } else {
                counters.chunksReceived++;
                counters.tensorsDelivered++;
                if (st.receivedBytes != null) {
                    st.receivedBytes.add(st.chunkEnd);
                }
                end(st, true);
            }
        }
    }

    /** Ends the in-place tensor of an image, if any, telling its sink how it ended. */
    void end(ImageState st, boolean complete) {
        InPlaceConsumer.Sink sink = st.sink;
        if (sink != null) {
            st.sink = null;
            try {
                sink.onEnd(complete);
            } catch (Throwable t) {
                counters.onError(t);
            }
        }
    }

    /** Drops the in-place tensor in progress on an image: its sink hears it ended incomplete. */
    void abandon(ImageState st, DropReason reason, boolean end) {
        counters.drops.increment(reason);
        st.inMessage = false;
        st.skipping = !end;
        end(st, false);
    }
}
