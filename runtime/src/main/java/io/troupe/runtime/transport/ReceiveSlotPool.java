package io.troupe.runtime.transport;

import org.agrona.UnsafeApi;
import org.agrona.concurrent.ManyToOneConcurrentArrayQueue;

/**
 * Off-heap reassembly memory of one receiver under a byte budget. Slots are reused best-fit, so a
 * steady stream of same-sized tensors allocates nothing after warm-up; memory of free slots that do
 * not fit is given back when the budget needs room.
 *
 * <p>Threading: everything except {@link #onReleased} runs on the receiver agent's thread;
 * releases from other threads travel through a many-to-one queue drained by {@link #drainReleases}.
 */
public final class ReceiveSlotPool implements AutoCloseable {
    private static final int ALIGNMENT = 64;

    private final long budgetBytes;
    private final ReceiveSlot[] slots;
    private final ReceiveSlot[] free;      // FREE with memory
    private final ReceiveSlot[] empty;     // FREE without memory
    private final ReceiveSlot[] active;    // FILLING or READY
    private final ManyToOneConcurrentArrayQueue<ReceiveSlot> released;
    private int freeCount;
    private int emptyCount;
    private int activeCount;
    private long committedBytes;
    private long allocations;

    public ReceiveSlotPool(long budgetBytes, int maxSlots) {
        if (budgetBytes <= 0 || maxSlots <= 0) {
            throw new IllegalArgumentException("budgetBytes and maxSlots must be positive: budgetBytes=" + budgetBytes
                + ", maxSlots=" + maxSlots);
        }
        this.budgetBytes = budgetBytes;
        this.slots = new ReceiveSlot[maxSlots];
        this.free = new ReceiveSlot[maxSlots];
        this.empty = new ReceiveSlot[maxSlots];
        this.active = new ReceiveSlot[maxSlots];
        this.released = new ManyToOneConcurrentArrayQueue<>(Math.max(2, maxSlots));
        for (int i = maxSlots - 1; i >= 0; i--) {
            slots[i] = new ReceiveSlot(this, i);
            empty[emptyCount++] = slots[i];
        }
    }

    public long budgetBytes() {
        return budgetBytes;
    }

    /** Bytes of native memory currently held (in-use and cached free slots). */
    public long committedBytes() {
        return committedBytes;
    }

    /** How many times native memory was allocated; constant in a steady state. */
    public long allocations() {
        return allocations;
    }

    /** Slots filling or delivered and not yet released. */
    public int activeCount() {
        return activeCount;
    }

    /** Active slot {@code i} ({@code 0 <= i < activeCount()}), for lookups on the agent thread. */
    ReceiveSlot active(int i) {
        return active[i];
    }

    public ReceiveSlot slot(int index) {
        return slots[index];
    }

    private static long roundUp(long bytes) {
        long unit = bytes < 4096 ? ALIGNMENT : 4096;
        return (bytes + unit - 1) & -unit;
    }

    /**
     * A slot with room for {@code lengthBytes}, marked active; {@code null} when the budget or the
     * slot count is exhausted (the caller back-pressures). Call {@link ReceiveSlot#begin} next.
     */
    ReceiveSlot acquire(long lengthBytes) {
        // Take back what owners released since the duty cycle began: a tensor that arrives in the same
        // poll as its predecessor's release must reuse that slot, not allocate fresh memory, whose first
        // touch costs a page fault per 4 KiB (about 0.3 s for 64 MiB in a VM; the bimodal IPC runs).
        drainReleases();
        long need = roundUp(lengthBytes);
        int best = -1;
        for (int i = 0; i < freeCount; i++) {
            long cap = free[i].capacityBytes;
            if (cap >= need && (best < 0 || cap < free[best].capacityBytes)) {
                best = i;
            }
        }
        boolean goodFit = best >= 0 && free[best].capacityBytes <= 2 * need + 65536;
        if (goodFit || (best >= 0 && committedBytes + need > budgetBytes)) {
            return activate(removeFree(best));
        }
        if (emptyCount == 0 && freeCount == 0) {
            return null;
        }
        // make room: give back memory of free slots that do not fit, largest first
        while (committedBytes + need > budgetBytes && freeCount > 0) {
            int largest = 0;
            for (int i = 1; i < freeCount; i++) {
                if (free[i].capacityBytes > free[largest].capacityBytes) {
                    largest = i;
                }
            }
            ReceiveSlot s = removeFree(largest);
            freeMemory(s);
            empty[emptyCount++] = s;
        }
        if (committedBytes + need > budgetBytes) {
            return null;
        }
        ReceiveSlot s;
        if (emptyCount > 0) {
            s = empty[--emptyCount];
        } else {
            s = removeFree(0);
            freeMemory(s);
        }
        long raw = UnsafeApi.allocateMemory(need + ALIGNMENT);
        s.rawAddress = raw;
        s.address = (raw + ALIGNMENT - 1) & -ALIGNMENT;
        s.capacityBytes = need;
        committedBytes += need;
        allocations++;
        return activate(s);
    }

    private ReceiveSlot removeFree(int i) {
        ReceiveSlot s = free[i];
        free[i] = free[--freeCount];
        free[freeCount] = null;
        return s;
    }

    private void freeMemory(ReceiveSlot s) {
        UnsafeApi.freeMemory(s.rawAddress);
        committedBytes -= s.capacityBytes;
        s.rawAddress = 0;
        s.address = 0;
        s.capacityBytes = 0;
    }

    private ReceiveSlot activate(ReceiveSlot s) {
        s.activeIndex = activeCount;
        active[activeCount++] = s;
        return s;
    }

    /** Returns an active slot to the free list (agent thread): abandoned fills and drained releases. */
    void recycle(ReceiveSlot s) {
        if (s.state == ReceiveSlot.FREE) {
            return;
        }
        int i = s.activeIndex;
        ReceiveSlot last = active[--activeCount];
        active[i] = last;
        last.activeIndex = i;
        active[activeCount] = null;
        s.activeIndex = -1;
        s.state = ReceiveSlot.FREE;
        s.generation++;
        free[freeCount++] = s;
    }

    /** Called by {@link ReceiveSlot#release()} on any thread. */
    void onReleased(ReceiveSlot s) {
        if (!released.offer(s)) {
            throw new IllegalStateException("release queue full: slot=" + s.index());
        }
    }

    /** Moves slots released by their owners back to the free list; returns how many (agent thread). */
    int drainReleases() {
        int n = 0;
        ReceiveSlot s;
        while ((s = released.poll()) != null) {
            recycle(s);
            n++;
        }
        return n;
    }

    /** Frees all native memory. Slots still held by owners become invalid. */
    @Override
    public void close() {
        for (ReceiveSlot s : slots) {
            if (s.rawAddress != 0) {
                UnsafeApi.freeMemory(s.rawAddress);
                s.rawAddress = 0;
                s.address = 0;
                s.capacityBytes = 0;
            }
            s.state = ReceiveSlot.FREE;
        }
        committedBytes = 0;
    }
}
