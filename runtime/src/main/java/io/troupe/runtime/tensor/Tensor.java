package io.troupe.runtime.tensor;

import io.troupe.runtime.device.Device;
import java.util.Arrays;

/**
 * A dense, row-major, contiguous array of elements with a shape, living on one {@link Device}.
 *
 * <p>A tensor is a window {@code [offsetElements, offsetElements + numel)} onto a {@link Storage}.
 * {@link #view} and {@link #reshape} make new windows without copying. Only the tensor made by
 * {@code Device.allocate} owns its storage; closing a view does nothing.
 *
 * <p>Threading: a tensor is a plain value; the device that owns it decides which thread may touch
 * its memory (the worker's device executor).
 */
public final class Tensor implements AutoCloseable {
    private final Device device;
    private final Storage storage;
    private final DType dtype;
    private final long offsetElements;
    private final int[] shape;
    private final long numel;
    private final boolean owner;

    public Tensor(Device device, Storage storage, DType dtype, long offsetElements, int[] shape, boolean owner) {
        this.device = device;
        this.storage = storage;
        this.dtype = dtype;
        this.offsetElements = offsetElements;
        this.shape = shape.clone();
        this.numel = numelOf(shape);
        this.owner = owner;
        long endBytes = (offsetElements + numel) * dtype.sizeBytes();
        if (offsetElements < 0 || endBytes > storage.lengthBytes()) {
            throw new IllegalArgumentException("tensor window out of storage: offsetElements=" + offsetElements
                + ", shape=" + Arrays.toString(shape) + ", storageBytes=" + storage.lengthBytes());
        }
    }

    /** Number of elements of a shape; every dimension must be positive. */
    public static long numelOf(int... shape) {
        long n = 1;
        for (int d : shape) {
            if (d <= 0) {
                throw new IllegalArgumentException("shape dimensions must be positive: " + Arrays.toString(shape));
            }
            n *= d;
        }
        return n;
    }

    public Device device() {
        return device;
    }

    public Storage storage() {
        return storage;
    }

    public DType dtype() {
        return dtype;
    }

    /** Offset of the first element within the storage, in elements. */
    public long offsetElements() {
        return offsetElements;
    }

    /** The address of the first element (host address or device pointer). */
    public long address() {
        return storage.address() + offsetElements * dtype.sizeBytes();
    }

    public int[] shape() {
        return shape.clone();
    }

    public int rank() {
        return shape.length;
    }

    public int dim(int i) {
        return shape[i < 0 ? shape.length + i : i];
    }

    public long numel() {
        return numel;
    }

    /** Size of the element window in bytes. */
    public long lengthBytes() {
        return numel * dtype.sizeBytes();
    }

    /** Same elements, another shape with the same element count. */
    public Tensor reshape(int... newShape) {
        if (numelOf(newShape) != numel) {
            throw new IllegalArgumentException("cannot reshape " + Arrays.toString(shape) + " to "
                + Arrays.toString(newShape));
        }
        return new Tensor(device, storage, dtype, offsetElements, newShape, false);
    }

    /** A contiguous sub-window starting {@code offsetElements} elements into this tensor. */
    public Tensor view(long offsetElements, int... newShape) {
        long n = numelOf(newShape);
        if (offsetElements < 0 || offsetElements + n > numel) {
            throw new IllegalArgumentException("view out of range: offsetElements=" + offsetElements + ", shape="
                + Arrays.toString(newShape) + " in tensor of " + numel + " elements");
        }
        return new Tensor(device, storage, dtype, this.offsetElements + offsetElements, newShape, false);
    }

    /** Row {@code i} of the leading dimension, as a tensor of the remaining dimensions. */
    public Tensor slice0(int i) {
        int[] rest = shape.length == 1 ? new int[] {1} : Arrays.copyOfRange(shape, 1, shape.length);
        return view((long) i * numelOf(rest), rest);
    }

    /** Copies the elements to a new float array (through the device). */
    public float[] toFloatArray() {
        if (numel > Integer.MAX_VALUE) {
            throw new IllegalStateException("tensor too large for a Java array: " + numel);
        }
        float[] out = new float[(int) numel];
        device.copyToHost(this, out);
        return out;
    }

    /** Closes the storage if this tensor owns it; a view's close does nothing. */
    @Override
    public void close() {
        if (owner) {
            storage.close();
        }
    }

    @Override
    public String toString() {
        return "Tensor" + Arrays.toString(shape) + " " + dtype + " on " + device.name();
    }
}
