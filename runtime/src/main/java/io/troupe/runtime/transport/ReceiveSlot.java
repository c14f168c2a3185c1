package io.troupe.runtime.transport;

import io.troupe.runtime.device.Device;
import io.troupe.runtime.device.DeviceKind;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Storage;
import io.troupe.runtime.tensor.Tensor;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicIntegerFieldUpdater;
import org.agrona.DirectBuffer;
import org.agrona.UnsafeApi;
import org.agrona.concurrent.UnsafeBuffer;

/**
 * One preallocated, 64-byte aligned block of off-heap memory that a receiver reassembles a tensor
 * into. The owner learns of it when the whole tensor is there, reads it in place ({@link #buffer()},
 * {@link #address()}, {@link #asTensor}) and then calls {@link #release()} exactly once, from any
 * thread, which returns it to its pool.
 *
 * <p>Threading: the metadata and memory are written by the receiver agent only while the slot is
 * filling; once delivered they are stable until {@link #release()}. Reading after release is a bug.
 */
public final class ReceiveSlot {
    static final int FREE = 0;
    static final int FILLING = 1;
    static final int READY = 2;
    static final int TAKEN = 3;

    private static final AtomicIntegerFieldUpdater<ReceiveSlot> RELEASED =
        AtomicIntegerFieldUpdater.newUpdater(ReceiveSlot.class, "released");

    private final ReceiveSlotPool pool;
    private final int index;
    private final UnsafeBuffer buffer = new UnsafeBuffer(0, 0);
    private final int[] shape = new int[TensorFrameDescriptor.MAX_DIMS];
    private final SlotStorage storage = new SlotStorage();

    long rawAddress;
    long address;
    long capacityBytes;
    int state = FREE;
    int generation;
    int activeIndex = -1;
    private volatile int released;

    int sourceRank;
    FrameKind kind;
    long tensorKey;
    long epoch;
    long step;
    DType dtype;
    int ndims;
    long totalBytes;
    long receivedBytes;

    ReceiveSlot(ReceiveSlotPool pool, int index) {
        this.pool = pool;
        this.index = index;
    }

    /** Sets up the slot for a new tensor (agent thread). */
    void begin(int sourceRank, FrameKind kind, long tensorKey, long epoch, long step, DType dtype,
               TensorFrameFlyweight frame, int ndims, long totalBytes) {
        this.sourceRank = sourceRank;
        this.kind = kind;
        this.tensorKey = tensorKey;
        this.epoch = epoch;
        this.step = step;
        this.dtype = dtype;
        this.ndims = ndims;
        for (int i = 0; i < TensorFrameDescriptor.MAX_DIMS; i++) {
            shape[i] = i < ndims ? frame.dim(i) : 0;
        }
        this.totalBytes = totalBytes;
        this.receivedBytes = 0;
        this.generation++;
        this.state = FILLING;
        this.released = 0;
        buffer.wrap(address, (int) Math.min(totalBytes, Integer.MAX_VALUE));
    }

    /** True when the frame describes the same tensor as this slot (dtype, shape, total bytes). */
    boolean sameTensor(int dtypeCode, TensorFrameFlyweight frame, int ndims, long totalBytes) {
        if (dtype.wireCode() != dtypeCode || this.ndims != ndims || this.totalBytes != totalBytes) {
            return false;
        }
        for (int i = 0; i < ndims; i++) {
            if (shape[i] != frame.dim(i)) {
                return false;
            }
        }
        return true;
    }

    /** The slot's number within its pool, for notices such as "tensor ready in slot 7". */
    public int index() {
        return index;
    }

    public int sourceRank() {
        return sourceRank;
    }

    public FrameKind kind() {
        return kind;
    }

    public long tensorKey() {
        return tensorKey;
    }

    public long epoch() {
        return epoch;
    }

    public long step() {
        return step;
    }

    public DType dtype() {
        return dtype;
    }

    /** Number of dimensions of the tensor. */
    public int rank() {
        return ndims;
    }

    public int dim(int i) {
        return shape[i];
    }

    /** A copy of the shape (allocates; not for hot paths). */
    public int[] shape() {
        return Arrays.copyOf(shape, ndims);
    }

    /** The tensor's length in bytes. */
    public long lengthBytes() {
        return totalBytes;
    }

    /** Native address of the first byte (64-byte aligned). */
    public long address() {
        return address;
    }

    /** A view of the tensor's bytes {@code [0, lengthBytes)} (tensors up to 2 GiB); valid until release. */
    public DirectBuffer buffer() {
        return buffer;
    }

    /** Copies the tensor's bytes to native memory at {@code dstAddress} with room for {@code dstCapacityBytes}. */
    public void copyTo(long dstAddress, long dstCapacityBytes) {
        if (dstCapacityBytes < totalBytes) {
            throw new IllegalArgumentException("destination too small: dstCapacityBytes=" + dstCapacityBytes
                + ", lengthBytes=" + totalBytes);
        }
        UnsafeApi.copyMemory(address, dstAddress, totalBytes);
    }

    /** Copies into a CPU tensor of the same dtype and element count. */
    public void copyTo(Tensor dst) {
        if (dst.device().kind() != DeviceKind.CPU) {
            throw new IllegalArgumentException("copyTo needs a CPU tensor: device=" + dst.device().name());
        }
        if (dst.dtype() != dtype || dst.lengthBytes() != totalBytes) {
            throw new IllegalArgumentException("tensor mismatch: slot " + dtype + " " + Arrays.toString(shape())
                + ", destination " + dst);
        }
        UnsafeApi.copyMemory(address, dst.address(), totalBytes);
    }

    /**
     * A non-owning CPU tensor over the slot's memory (no copy); valid until {@link #release()}.
     * {@code cpu} is the device the tensor reports (its kind must be CPU).
     */
    public Tensor asTensor(Device cpu) {
        if (cpu.kind() != DeviceKind.CPU) {
            throw new IllegalArgumentException("slot memory is host memory: device=" + cpu.name());
        }
        return new Tensor(cpu, storage, dtype, 0, shape(), false);
    }

    /**
     * Returns the slot to its pool. Call exactly once per delivered slot, from any thread.
     *
     * @throws IllegalStateException on a second release
     */
    public void release() {
        if (!RELEASED.compareAndSet(this, 0, 1)) {
            throw new IllegalStateException("slot released twice or not delivered: slot=" + index);
        }
        pool.onReleased(this);
    }

    @Override
    public String toString() {
        return "ReceiveSlot{index=" + index + ", source=" + sourceRank + ", kind=" + kind + ", key="
            + TensorKey.toString(tensorKey) + ", epoch=" + epoch + ", dtype=" + dtype + ", shape="
            + Arrays.toString(shape()) + ", bytes=" + receivedBytes + "/" + totalBytes + "}";
    }

    private final class SlotStorage implements Storage {
        @Override
        public long lengthBytes() {
            return capacityBytes;
        }

        @Override
        public long address() {
            return address;
        }

        @Override
        public boolean isOpen() {
            return state != FREE;
        }

        @Override
        public void close() {
            // the pool owns the memory
        }
    }
}
