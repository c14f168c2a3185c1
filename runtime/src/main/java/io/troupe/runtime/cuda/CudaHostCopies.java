package io.troupe.runtime.cuda;

import static io.troupe.runtime.cuda.CudaDevice.check;
import static io.troupe.runtime.cuda.CudaLaunch.requireCapacity;
import static io.troupe.runtime.cuda.CudaLaunch.requireType;
import static io.troupe.runtime.cuda.CudaLaunch.storage;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoHAsync;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoDAsync;
import static jcuda.driver.JCudaDriver.cuStreamSynchronize;

import io.troupe.runtime.device.HostTensorCopies;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;

/**
 * The copies between {@link CudaDevice} memory and the host, each complete when it returns: Java
 * arrays go through the device's pinned staging buffer (floats to and from F32 or BF16, ints to
 * I32), host tensors are copied straight to and from their memory on the device's stream, then
 * waited for. A copy to the host then reports the errors the kernels recorded in the device's
 * error word.
 */
final class CudaHostCopies {
    private CudaHostCopies() {
    }

    static void fromHost(CudaDevice dev, float[] src, Tensor dst) {
        dev.bind();
        CudaStorage s = storage(dev, dst, "copyFromHost", "dst");
        requireCapacity("copyFromHost", "dst", dst, src.length);
        long off = dst.offsetElements() * dst.dtype().sizeBytes();
        switch (dst.dtype()) {
            case F32 -> dev.staging().upload(src, s, off);
            case BF16 -> dev.staging().uploadAsBf16(src, s, off);
            default -> throw new IllegalArgumentException("copyFromHost(float[]) needs an F32 or BF16 tensor: dst is "
                + dst.dtype());
        }
    }

    static void fromHost(CudaDevice dev, int[] src, Tensor dst) {
        dev.bind();
        CudaStorage s = storage(dev, dst, "copyFromHost", "dst");
        requireType("copyFromHost", "dst", dst, DType.I32);
        requireCapacity("copyFromHost", "dst", dst, src.length);
        dev.staging().upload(src, s, dst.offsetElements() * 4L);
    }

    static void toHost(CudaDevice dev, Tensor src, float[] dst) {
        dev.bind();
        CudaStorage s = storage(dev, src, "copyToHost", "src");
        if (dst.length < src.numel()) {
            throw new IllegalArgumentException("copyToHost: dst holds " + dst.length + " floats, src has "
                + src.numel());
        }
        int n = (int) src.numel();
        long off = src.offsetElements() * src.dtype().sizeBytes();
        switch (src.dtype()) {
            case F32 -> dev.staging().download(s, off, dst, n);
            case I32 -> dev.staging().downloadInts(s, off, dst, n);
            case BF16 -> dev.staging().downloadBf16(s, off, dst, n);
            default -> throw new IllegalArgumentException("copyToHost cannot convert " + src.dtype() + " to float");
        }
        dev.throwKernelErrors();
    }

    /**
     * One {@code cuMemcpyDtoHAsync} from the device pointer straight to the host address, on the device's
     * stream (so after the kernels queued there: a synchronous {@code cuMemcpyDtoH} runs on the legacy
     * stream, which does not wait for this non-blocking one), then a wait for it.
     */
    static void toHost(CudaDevice dev, Tensor src, Tensor hostDst) {
        dev.bind();
        String op = "copyToHost";
        CudaStorage s = storage(dev, src, op, "src");
        long bytes = HostTensorCopies.checkDownload(src, hostDst);
        check(op, "cuMemcpyDtoHAsync(" + bytes + " bytes)", cuMemcpyDtoHAsync(new HostPointer(hostDst.address()),
            s.pointerAt(src.offsetElements() * src.dtype().sizeBytes()), bytes, dev.stream()));
        check(op, "cuStreamSynchronize", cuStreamSynchronize(dev.stream()));
        dev.throwKernelErrors();
    }

    /**
     * One {@code cuMemcpyHtoDAsync} from the host address straight to the device pointer, on the device's
     * stream (after the calls that may still read or write {@code dst}, before the ones issued later), then a
     * wait for it, so that {@code hostSrc} (pinned memory is read when the copy runs) may change at once.
     */
    static void fromHost(CudaDevice dev, Tensor hostSrc, Tensor dst) {
        dev.bind();
        String op = "copyFromHost";
        CudaStorage d = storage(dev, dst, op, "dst");
        long bytes = HostTensorCopies.checkUpload(hostSrc, dst);
        check(op, "cuMemcpyHtoDAsync(" + bytes + " bytes)", cuMemcpyHtoDAsync(
            d.pointerAt(dst.offsetElements() * dst.dtype().sizeBytes()), new HostPointer(hostSrc.address()), bytes,
            dev.stream()));
        check(op, "cuStreamSynchronize", cuStreamSynchronize(dev.stream()));
    }
}
