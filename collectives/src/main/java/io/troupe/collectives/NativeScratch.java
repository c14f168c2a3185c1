package io.troupe.collectives;

import org.agrona.UnsafeApi;

/** Grow-only, 64-byte aligned native scratch memory (allocates only when a larger size is first asked for). */
final class NativeScratch {
    private long raw;
    private long address;
    private long capacityBytes;

    /** An address with room for {@code bytes}; previous contents are lost when it grows. */
    long ensure(long bytes) {
        if (bytes > capacityBytes) {
            free();
            long cap = Math.max(bytes, 4096);
            raw = UnsafeApi.allocateMemory(cap + 64);
            address = (raw + 63) & -64L;
            capacityBytes = cap;
        }
        return address;
    }

    long capacityBytes() {
        return capacityBytes;
    }

    void free() {
        if (raw != 0) {
            UnsafeApi.freeMemory(raw);
            raw = 0;
            address = 0;
            capacityBytes = 0;
        }
    }
}
