package io.troupe.runtime.transport;

import io.troupe.runtime.tensor.DType;

/**
 * Optional consumer of whole-tensor chunks straight from the Aeron term buffer, so a tensor it is
 * waiting for costs no copy into a {@link ReceiveSlot} (collectives reduce or copy each fragment
 * into their destination). A {@link TensorReceiverAgent} asks it about every validated frame that
 * carries a whole tensor in one chunk, is not sent by reference and needs no CRC check on this
 * channel (a checked chunk must be verified before anyone uses it, so it always takes a slot);
 * whatever it declines is reassembled in a slot and delivered to the listener as usual.
 *
 * <p>Fragments: Aeron splits a message larger than one MTU into fragments, each handed to
 * {@link Sink#onData} with its offset in the tensor, in order. Every fragment but the last holds a
 * multiple of 32 bytes, so elements of up to 32 bytes never straddle two fragments.
 *
 * <p>Threading: everything on the receiver agent's thread. Implementations must not block, must
 * not allocate in steady state, and must not poll the receiver from inside these calls.
 */
public interface InPlaceConsumer {
    /**
     * Returned by {@link #onWholeTensor} to leave the message in the log for now: the receiver stops
     * polling that image for this duty cycle and offers the same message again on a later one (a
     * collective piece that arrives before its collective starts can then still be taken in place
     * instead of being copied into a slot). Everything behind it on that image waits meanwhile, so
     * a consumer must answer this only for a short, bounded time.
     */
    Sink LATER = new Sink() {
        @Override
        public void onData(long address, long tensorOffset, int lengthBytes) {
        }

        @Override
        public void onEnd(boolean complete) {
        }
    };

    /**
     * A whole tensor arrives (first fragment, validated). Returning a sink consumes it in place: the
     * sink then gets every fragment's payload and one {@link Sink#onEnd}; returning {@code null}
     * leaves it to the slot path; returning {@link #LATER} leaves it in the log to be offered again.
     *
     * @param step       the frame's step field (collectives put their signature there)
     * @param totalBytes the tensor's length in bytes
     */
    Sink onWholeTensor(int sourceRank, FrameKind kind, long tensorKey, long step, DType dtype, long totalBytes);

    /** Takes one tensor's bytes in place. */
    interface Sink {
        /**
         * {@code lengthBytes} bytes of the tensor starting at {@code tensorOffset} lie at native
         * {@code address} (inside the term buffer: valid only during this call).
         */
        void onData(long address, long tensorOffset, int lengthBytes);

        /**
         * The tensor ended: {@code complete} is true when every byte went through {@link #onData};
         * false when the message was cut short (bad fragment lengths, image lost), in which case
         * the bytes already handed over are all there is.
         */
        void onEnd(boolean complete);
    }
}
