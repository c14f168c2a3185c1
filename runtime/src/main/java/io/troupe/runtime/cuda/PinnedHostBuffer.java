package io.troupe.runtime.cuda;

import static jcuda.driver.JCudaDriver.cuMemAllocHost;
import static jcuda.driver.JCudaDriver.cuMemFreeHost;

import io.troupe.runtime.tensor.HostStorage;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import jcuda.Pointer;
import org.agrona.BufferUtil;

/**
 * Page-locked host memory ({@code cuMemAllocHost}) that the GPU's copy engine reads and writes at full
 * speed while kernels run: the staging area for activations travelling between a GPU stage and the
 * data plane. {@link #address()} lets an Agrona buffer wrap it, so a frame can be published from (or
 * received into) the same bytes the GPU copies.
 *
 * <p>Made by {@link CudaDevice#allocatePinned} (and by the device's staged inputs and outputs, where it is
 * the {@link Storage} of a host tensor); close it after the last copy that uses it has completed.
 * Threading: plain memory; the owner orders its use with the {@link CopyTicket}s of its copies.
 */
public final class PinnedHostBuffer implements HostStorage {
    private final Pointer pointer = new Pointer();
    private final long lengthBytes;
    private final ByteBuffer buffer;
    private boolean open;

    PinnedHostBuffer(long lengthBytes) {
        if (lengthBytes <= 0 || lengthBytes > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("pinned buffer size must be in [1, 2^31): lengthBytes=" + lengthBytes);
        }
        this.lengthBytes = lengthBytes;
        CudaDevice.check("allocatePinned", "cuMemAllocHost(" + lengthBytes + " bytes)",
            cuMemAllocHost(pointer, lengthBytes));
        open = true;
        this.buffer = pointer.getByteBuffer(0, lengthBytes).order(ByteOrder.LITTLE_ENDIAN);
    }

    /** The native address of the first byte (page-aligned). */
    @Override
    public long address() {
        return BufferUtil.address(buffer);
    }

    @Override
    public long lengthBytes() {
        return lengthBytes;
    }

    /** A little-endian direct view of the whole buffer (a fresh duplicate per call). */
    public ByteBuffer byteBuffer() {
        return buffer.duplicate().order(ByteOrder.LITTLE_ENDIAN);
    }

    Pointer pointerAt(long byteOffset) {
        return byteOffset == 0 ? pointer : pointer.withByteOffset(byteOffset);
    }

    void checkRange(String op, long offsetBytes, long bytes) {
        if (!open) {
            throw new IllegalStateException(op + ": pinned buffer is closed");
        }
        if (offsetBytes < 0 || offsetBytes + bytes > lengthBytes) {
            throw new IllegalArgumentException(op + ": range [" + offsetBytes + ", " + (offsetBytes + bytes)
                + ") outside pinned buffer of " + lengthBytes + " bytes");
        }
    }

    @Override
    public boolean isOpen() {
        return open;
    }

    @Override
    public void close() {
        if (open) {
            open = false;
            cuMemFreeHost(pointer);
        }
    }
}
