package io.troupe.runtime.cuda;

import static io.troupe.runtime.cuda.CudaDevice.check;
import static io.troupe.runtime.cuda.CudaLaunch.BLOCK;
import static io.troupe.runtime.cuda.CudaLaunch.f32;
import static io.troupe.runtime.cuda.CudaLaunch.launch;
import static io.troupe.runtime.cuda.CudaLaunch.launch1d;
import static io.troupe.runtime.cuda.CudaLaunch.requireCapacity;
import static io.troupe.runtime.cuda.CudaLaunch.storage;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoDAsync;
import static jcuda.driver.JCudaDriver.cuMemsetD32Async;
import static jcuda.driver.JCudaDriver.cuMemsetD8Async;

import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;

/**
 * The BLAS-like vector operations of {@link CudaDevice}: axpy, scale and add (grid-stride kernels),
 * copy and fill (driver copies and memsets on the device's stream), and the sum of squares (per-block
 * partial sums in a fixed order, then one block adding them, read back through the pinned staging
 * buffer).
 */
final class CudaVectorOps {
    /** Blocks of the sum of squares' first pass: its scratch holds this many partial sums and the total. */
    static final int SUMSQ_BLOCKS = 256;

    private CudaVectorOps() {
    }

    static void axpy(CudaDevice dev, float alpha, Tensor x, Tensor y) {
        long n = x.numel();
        long px = f32(dev, x, n, "axpy", "x");
        long py = f32(dev, y, n, "axpy", "y");
        launch1d(dev, "axpy", "axpy_f32", n, dev.args().reset().i64(n).f32(alpha).ptr(px).ptr(py));
    }

    static void scale(CudaDevice dev, Tensor x, float alpha) {
        long n = x.numel();
        launch1d(dev, "scale", "scale_f32", n, dev.args().reset().i64(n).f32(alpha).ptr(f32(dev, x, n, "scale", "x")));
    }

    static void copy(CudaDevice dev, Tensor src, Tensor dst) {
        dev.bind();
        CudaStorage s = storage(dev, src, "copy", "src");
        CudaStorage d = storage(dev, dst, "copy", "dst");
        if (src.dtype() != dst.dtype()) {
            throw new IllegalArgumentException("copy: dtypes differ: src=" + src.dtype() + ", dst=" + dst.dtype());
        }
        requireCapacity("copy", "dst", dst, src.numel());
        long bytes = src.lengthBytes();
        int sz = src.dtype().sizeBytes();
        check("copy", "cuMemcpyDtoDAsync(" + bytes + " bytes)", cuMemcpyDtoDAsync(
            d.pointerAt(dst.offsetElements() * sz), s.pointerAt(src.offsetElements() * sz), bytes, dev.stream()));
    }

    static void fill(CudaDevice dev, Tensor x, float value) {
        dev.bind();
        CudaStorage s = storage(dev, x, "fill", "x");
        long off = x.offsetElements() * x.dtype().sizeBytes();
        if (x.dtype() == DType.F32) {
            check("fill", "cuMemsetD32Async", cuMemsetD32Async(s.pointerAt(off), Float.floatToRawIntBits(value),
                x.numel(), dev.stream()));
        } else if (value == 0.0f) {
            check("fill", "cuMemsetD8Async",
                cuMemsetD8Async(s.pointerAt(off), (byte) 0, x.lengthBytes(), dev.stream()));
        } else {
            throw new IllegalArgumentException("fill: only 0 can fill a " + x.dtype() + " tensor: value=" + value);
        }
    }

    static void add(CudaDevice dev, Tensor a, Tensor b, Tensor out) {
        long n = out.numel();
        launch1d(dev, "add", "add_f32", n, dev.args().reset().i64(n).ptr(f32(dev, a, n, "add", "a"))
            .ptr(f32(dev, b, n, "add", "b")).ptr(f32(dev, out, n, "add", "out")));
    }

    static double sumOfSquares(CudaDevice dev, CudaStorage sumsqScratch, Tensor x) {
        long n = x.numel();
        long px = f32(dev, x, n, "sumOfSquares", "x");
        long partial = sumsqScratch.address();
        launch(dev, "sumOfSquares", "sumsq_partial", SUMSQ_BLOCKS, 1, 1, BLOCK, 1, 1, 0,
            dev.args().reset().i64(n).ptr(px).ptr(partial));
        launch(dev, "sumOfSquares", "sumsq_final", 1, 1, 1, 32, 1, 1, 0,
            dev.args().reset().i32(SUMSQ_BLOCKS).ptr(partial).ptr(partial + 8L * SUMSQ_BLOCKS));
        return dev.staging().readDouble(sumsqScratch.pointerAt(8L * SUMSQ_BLOCKS), "sumOfSquares");
    }
}
