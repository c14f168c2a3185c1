package io.troupe.collectives.compress;

import java.util.Arrays;
import org.agrona.UnsafeApi;
import org.agrona.collections.Int2ObjectHashMap;

/**
 * The error-feedback residuals of one communicator's int8 all-reduces, one float32 vector per tag
 * (per gradient bucket): before sending, {@code v = g + e}; the wire carries {@code C(v)}; then
 * {@code e <- v - D(C(v))}. Residuals are this rank's state and belong in its checkpoint:
 * {@link #residual} exports one, {@link #restore} puts it back.
 *
 * <p>Threading: the communicator's agent uses the residuals while an int8 all-reduce runs; export
 * and restore only while no collective of the communicator is in flight.
 */
public final class ErrorFeedback implements AutoCloseable {
    private static final class Residual {
        final long raw;
        final long address;
        final long count;

        Residual(long count) {
            this.count = count;
            this.raw = UnsafeApi.allocateMemory(count * 4 + 64);
            this.address = (raw + 63) & -64L;
            UnsafeApi.setMemory(address, count * 4, (byte) 0);
        }
    }

    private final Int2ObjectHashMap<Residual> residuals = new Int2ObjectHashMap<>();

    /** The native residual of {@code tag}, zero-filled when first seen (or when its length changed). */
    public synchronized long residualAddress(int tag, long count) {
        Residual r = residuals.get(tag);
        if (r == null || r.count != count) {
            if (r != null) {
                UnsafeApi.freeMemory(r.raw);
            }
            r = new Residual(count);
            residuals.put(tag, r);
        }
        return r.address;
    }

    /** Tags that have a residual, ascending. */
    public synchronized int[] tags() {
        int[] t = new int[residuals.size()];
        int i = 0;
        for (Int2ObjectHashMap<Residual>.KeyIterator it = residuals.keySet().iterator(); it.hasNext(); ) {
            t[i++] = it.nextInt();
        }
        Arrays.sort(t);
        return t;
    }

    /** A copy of the residual of {@code tag}, or {@code null} when there is none. */
    public synchronized float[] residual(int tag) {
        Residual r = residuals.get(tag);
        if (r == null) {
            return null;
        }
        float[] out = new float[(int) r.count];
        for (int i = 0; i < out.length; i++) {
            out[i] = UnsafeApi.getFloat(r.address + 4L * i);
        }
        return out;
    }

    /** Sets the residual of {@code tag} (from a checkpoint). */
    public synchronized void restore(int tag, float[] values) {
        long a = residualAddress(tag, values.length);
        for (int i = 0; i < values.length; i++) {
            UnsafeApi.putFloat(a + 4L * i, values[i]);
        }
    }

    /** Native bytes the residuals hold. */
    public synchronized long nativeBytes() {
        long bytes = 0;
        for (Residual r : residuals.values()) {
            bytes += r.count * 4 + 64;
        }
        return bytes;
    }

    /** Frees every residual. */
    @Override
    public synchronized void close() {
        for (Residual r : residuals.values()) {
            UnsafeApi.freeMemory(r.raw);
        }
        residuals.clear();
    }
}
