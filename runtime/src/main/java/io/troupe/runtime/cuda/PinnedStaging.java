package io.troupe.runtime.cuda;

import static jcuda.driver.JCudaDriver.cuMemAllocHost;
import static jcuda.driver.JCudaDriver.cuMemFreeHost;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoHAsync;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoDAsync;
import static jcuda.driver.JCudaDriver.cuStreamSynchronize;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import jcuda.Pointer;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUstream;

/**
 * Host-to-device and device-to-host copies through one page-locked ({@code cuMemAllocHost}) buffer,
 * chunk by chunk: Java arrays are copied into the pinned buffer, which the copy engine reads at full
 * speed. Each chunk waits for its copy before the buffer is refilled, so a copy returns complete.
 *
 * <p>Threading: the device's issuing thread only.
 */
final class PinnedStaging implements AutoCloseable {
    static final int CHUNK_BYTES = 8 << 20;

    private final CUstream stream;
    private final Pointer host = new Pointer();
    private final ByteBuffer buffer;
    private boolean open;

    PinnedStaging(CUstream stream) {
        this.stream = stream;
        CudaDevice.check("create device", "cuMemAllocHost(" + CHUNK_BYTES + " bytes)",
            cuMemAllocHost(host, CHUNK_BYTES));
        open = true;
        buffer = host.getByteBuffer(0, CHUNK_BYTES).order(ByteOrder.LITTLE_ENDIAN);
    }

    void upload(float[] src, CudaStorage dst, long dstByteOffset) {
        int perChunk = CHUNK_BYTES / 4;
        for (int i = 0; i < src.length; i += perChunk) {
            int n = Math.min(perChunk, src.length - i);
            buffer.clear();
            buffer.asFloatBuffer().put(src, i, n);
            copyIn("copyFromHost", dst.pointerAt(dstByteOffset + 4L * i), 4L * n);
        }
    }

    void upload(int[] src, CudaStorage dst, long dstByteOffset) {
        upload(src, src.length, dst, dstByteOffset);
    }

    /** Uploads the first {@code count} ints of {@code src}. */
    void upload(int[] src, int count, CudaStorage dst, long dstByteOffset) {
        int perChunk = CHUNK_BYTES / 4;
        for (int i = 0; i < count; i += perChunk) {
            int n = Math.min(perChunk, count - i);
            buffer.clear();
            buffer.asIntBuffer().put(src, i, n);
            copyIn("copyFromHost", dst.pointerAt(dstByteOffset + 4L * i), 4L * n);
        }
    }

    /** Rounds each float to bfloat16 (nearest even) on the host and uploads the 16-bit values. */
    void uploadAsBf16(float[] src, CudaStorage dst, long dstByteOffset) {
        int perChunk = CHUNK_BYTES / 2;
        for (int i = 0; i < src.length; i += perChunk) {
            int n = Math.min(perChunk, src.length - i);
            buffer.clear();
            for (int j = 0; j < n; j++) {
                buffer.putShort(2 * j, Bf16.fromFloat(src[i + j]));
            }
            copyIn("copyFromHost", dst.pointerAt(dstByteOffset + 2L * i), 2L * n);
        }
    }

    void download(CudaStorage src, long srcByteOffset, float[] dst, int count) {
        int perChunk = CHUNK_BYTES / 4;
        for (int i = 0; i < count; i += perChunk) {
            int n = Math.min(perChunk, count - i);
            copyOut("copyToHost", src.pointerAt(srcByteOffset + 4L * i), 4L * n);
            buffer.clear();
            buffer.asFloatBuffer().get(dst, i, n);
        }
    }

    /** Downloads {@code count} int32 elements into {@code dst}. */
    void downloadInts(CudaStorage src, long srcByteOffset, int[] dst, int count) {
        int perChunk = CHUNK_BYTES / 4;
        for (int i = 0; i < count; i += perChunk) {
            int n = Math.min(perChunk, count - i);
            copyOut("embeddingBackward", src.pointerAt(srcByteOffset + 4L * i), 4L * n);
            buffer.clear();
            buffer.asIntBuffer().get(dst, i, n);
        }
    }

    /** Downloads int32 elements and widens them to float. */
    void downloadInts(CudaStorage src, long srcByteOffset, float[] dst, int count) {
        int perChunk = CHUNK_BYTES / 4;
        for (int i = 0; i < count; i += perChunk) {
            int n = Math.min(perChunk, count - i);
            copyOut("copyToHost", src.pointerAt(srcByteOffset + 4L * i), 4L * n);
            for (int j = 0; j < n; j++) {
                dst[i + j] = buffer.getInt(4 * j);
            }
        }
    }

    void downloadBf16(CudaStorage src, long srcByteOffset, float[] dst, int count) {
        int perChunk = CHUNK_BYTES / 2;
        for (int i = 0; i < count; i += perChunk) {
            int n = Math.min(perChunk, count - i);
            copyOut("copyToHost", src.pointerAt(srcByteOffset + 2L * i), 2L * n);
            for (int j = 0; j < n; j++) {
                dst[i + j] = Bf16.toFloat(buffer.getShort(2 * j));
            }
        }
    }

    /** Reads {@code count} ints (at most a chunk) from device memory, e.g. the error word. */
    int[] readInts(CUdeviceptr src, int count) {
        copyOut("synchronize", src, 4L * count);
        int[] out = new int[count];
        for (int j = 0; j < count; j++) {
            out[j] = buffer.getInt(4 * j);
        }
        return out;
    }

    /** Reads one double from device memory. */
    double readDouble(CUdeviceptr src, String op) {
        copyOut(op, src, 8);
        return buffer.getDouble(0);
    }

    private void copyIn(String op, CUdeviceptr dst, long bytes) {
        CudaDevice.check(op, "cuMemcpyHtoDAsync(" + bytes + " bytes)", cuMemcpyHtoDAsync(dst, host, bytes, stream));
        CudaDevice.check(op, "cuStreamSynchronize", cuStreamSynchronize(stream));
    }

    private void copyOut(String op, CUdeviceptr src, long bytes) {
        CudaDevice.check(op, "cuMemcpyDtoHAsync(" + bytes + " bytes)", cuMemcpyDtoHAsync(host, src, bytes, stream));
        CudaDevice.check(op, "cuStreamSynchronize", cuStreamSynchronize(stream));
    }

    @Override
    public void close() {
        if (open) {
            open = false;
            cuMemFreeHost(host);
        }
    }
}
