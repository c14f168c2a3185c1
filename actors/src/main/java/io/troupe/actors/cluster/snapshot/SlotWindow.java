package io.troupe.actors.cluster.snapshot;

import io.troupe.runtime.tensor.HostStorage;

/**
 * A run of bytes inside one segment of a {@link SnapshotBuffer}, lent as {@link HostStorage} so that a
 * device copies a tensor straight between its memory and the slot's
 * ({@link io.troupe.runtime.device.Device#copyToHost(io.troupe.runtime.tensor.Tensor, io.troupe.runtime.tensor.Tensor)}
 * and back). It owns nothing: the slot does. It is made by the slot for one copy, after the slot checked
 * that the run lies inside one segment and is aligned for the tensor's elements, and closed as soon as that
 * copy returns (a device's copies are complete when they return), so it never outlives the write or the
 * hold of the slot it came from; once closed its address is refused.
 *
 * <p>Threading: the thread copying the tensor.
 */
final class SlotWindow implements HostStorage {
    private final long address;
    private final long lengthBytes;
    private boolean open = true;

    SlotWindow(long address, long lengthBytes) {
        this.address = address;
        this.lengthBytes = lengthBytes;
    }

    @Override
    public long lengthBytes() {
        return lengthBytes;
    }

    @Override
    public long address() {
        if (!open) {
            throw new IllegalStateException("snapshot slot window closed: its copy is over");
        }
        return address;
    }

    @Override
    public boolean isOpen() {
        return open;
    }

    /** Ends the loan (the memory stays the slot's). */
    @Override
    public void close() {
        open = false;
    }
}
