package io.troupe.collectives;

/** What the ring sends: float32 from the buffer itself, bf16 encoded into staging, or raw bytes (all-gather only). */
enum RingWire {
    F32(4),
    BF16(4),
    BYTES(1);

    /** Bytes of one element in the local buffer (bf16 is widened back to float32 there). */
    final int localBytes;

    RingWire(int localBytes) {
        this.localBytes = localBytes;
    }
}
