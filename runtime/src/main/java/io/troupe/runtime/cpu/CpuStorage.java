package io.troupe.runtime.cpu;

import io.troupe.runtime.tensor.HostStorage;
import java.lang.ref.Cleaner;
import java.util.concurrent.atomic.AtomicLong;

/** Off-heap host memory, 64-byte aligned, zero-filled, freed on {@link #close()} (or by a cleaner). */
public final class CpuStorage implements HostStorage {
    private static final Cleaner CLEANER = Cleaner.create();

    private final long lengthBytes;
    private final long address;
    private final Freer freer;
    private final Cleaner.Cleanable cleanable;

    /** Allocates {@code lengthBytes} of zeroed memory. */
    public CpuStorage(long lengthBytes) {
        this(lengthBytes, null);
    }

    /**
     * Allocates {@code lengthBytes} of zeroed memory and adds them to {@code bytesInUse} until the memory is freed
     * (by {@link #close()} or the cleaner); {@code null} counts nothing.
     */
    CpuStorage(long lengthBytes, AtomicLong bytesInUse) {
        if (lengthBytes < 0) {
            throw new IllegalArgumentException("storage length must be >= 0: lengthBytes=" + lengthBytes);
        }
        long raw = CpuMemory.UNSAFE.allocateMemory(Math.max(1, lengthBytes) + CpuMemory.ALIGNMENT_BYTES);
        long aligned = (raw + CpuMemory.ALIGNMENT_BYTES - 1) & -CpuMemory.ALIGNMENT_BYTES;
        CpuMemory.UNSAFE.setMemory(aligned, lengthBytes, (byte) 0);
        this.lengthBytes = lengthBytes;
        this.address = aligned;
        this.freer = new Freer(raw, lengthBytes, bytesInUse);
        this.cleanable = CLEANER.register(this, freer);
        if (bytesInUse != null) {
            bytesInUse.addAndGet(lengthBytes);
        }
    }

    @Override
    public long lengthBytes() {
        return lengthBytes;
    }

    @Override
    public long address() {
        if (freer.freed) {
            throw new IllegalStateException("storage already closed");
        }
        return address;
    }

    @Override
    public boolean isOpen() {
        return !freer.freed;
    }

    @Override
    public void close() {
        cleanable.clean();
    }

    private static final class Freer implements Runnable {
        private final long raw;
        private final long lengthBytes;
        private final AtomicLong bytesInUse;
        private volatile boolean freed;

        Freer(long raw, long lengthBytes, AtomicLong bytesInUse) {
            this.raw = raw;
            this.lengthBytes = lengthBytes;
            this.bytesInUse = bytesInUse;
        }

        @Override
        public synchronized void run() {
            if (!freed) {
                freed = true;
                CpuMemory.UNSAFE.freeMemory(raw);
                if (bytesInUse != null) {
                    bytesInUse.addAndGet(-lengthBytes);
                }
            }
        }
    }
}
