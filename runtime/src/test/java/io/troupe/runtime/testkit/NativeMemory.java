package io.troupe.runtime.testkit;

import java.util.SplittableRandom;
import org.agrona.UnsafeApi;

/** Native, 64-byte aligned test memory filled with seeded random bytes, freed on close. */
public final class NativeMemory implements AutoCloseable {
    private final long raw;
    private final long address;
    private final long lengthBytes;

    public NativeMemory(long lengthBytes) {
        this.lengthBytes = lengthBytes;
        this.raw = UnsafeApi.allocateMemory(lengthBytes + 64);
        this.address = (raw + 63) & -64L;
    }

    /** Fills with bytes from {@code seed}. */
    public NativeMemory fillRandom(long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        long i = 0;
        for (; i + 8 <= lengthBytes; i += 8) {
            UnsafeApi.putLong(address + i, r.nextLong());
        }
        for (; i < lengthBytes; i++) {
            UnsafeApi.putByte(address + i, (byte) r.nextInt());
        }
        return this;
    }

    public long address() {
        return address;
    }

    public long lengthBytes() {
        return lengthBytes;
    }

    /**
     * Index of the first byte that differs between {@code [a, a+n)} and {@code [b, b+n)}, or -1
     * when equal (the element-by-element reference check of the transport tests).
     */
    public static long firstDifference(long a, long b, long n) {
        for (long i = 0; i < n; i++) {
            if (UnsafeApi.getByte(a + i) != UnsafeApi.getByte(b + i)) {
                return i;
            }
        }
        return -1;
    }

    @Override
    public void close() {
        UnsafeApi.freeMemory(raw);
    }
}
