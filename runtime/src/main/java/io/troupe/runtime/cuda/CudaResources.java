package io.troupe.runtime.cuda;

import static io.troupe.runtime.cuda.CudaDevice.check;
import static jcuda.driver.JCudaDriver.cuCtxSetCurrent;
import static jcuda.driver.JCudaDriver.cuDeviceGet;
import static jcuda.driver.JCudaDriver.cuDeviceGetAttribute;
import static jcuda.driver.JCudaDriver.cuDeviceGetName;
import static jcuda.driver.JCudaDriver.cuDevicePrimaryCtxRelease;
import static jcuda.driver.JCudaDriver.cuDevicePrimaryCtxRetain;
import static jcuda.driver.JCudaDriver.cuMemsetD8Async;
import static jcuda.driver.JCudaDriver.cuStreamCreate;
import static jcuda.driver.JCudaDriver.cuStreamDestroy;
import static jcuda.driver.JCudaDriver.cuStreamSynchronize;

import io.troupe.runtime.cpu.CpuDevice;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdevice_attribute;
import jcuda.driver.CUstream;
import jcuda.driver.CUstream_flags;

/**
 * The native resources one {@link CudaDevice} owns, and their making and freeing: the GPU's handle and facts
 * (name, compute capability, multiprocessors), the retained primary context and the device's one stream, the
 * caching allocator, the loaded kernel modules, the pinned staging buffer, the kernel error word, the sum of
 * squares' scratch, the copy stream's transfers, cuBLAS where it loads, and the CPU device that the host halves
 * of staged buffers report.
 *
 * <p>Made all or nothing: each part made is undone, newest first, when a later part fails, and the failure is
 * rethrown. Freed by {@link #close} in a fixed order once the stream's work is done.
 *
 * <p>Threading: the device's issuing thread, except {@link #allocator} (which locks) and {@link #hostDevice},
 * which any thread may call.
 */
final class CudaResources {
    private static final int ERR_CE_TARGET = 1;
    private static final int ERR_EMBEDDING_ID = 2;

    private final String name;
    private final CUdevice device = new CUdevice();
    private final CUcontext context = new CUcontext();
    private final CUstream stream = new CUstream();
    private final CudaAllocator allocator = new CudaAllocator(stream);
    private final CudaModules modules;
    private final PinnedStaging staging;
    private final CudaStorage errorWord;      // int[2]: code, offending value
    private final CudaStorage sumsqScratch;   // double[CudaVectorOps.SUMSQ_BLOCKS + 1]
    private final CudaTransfers transfers;
    private final CublasGemm cublas;          // null when JCublas/libcublas cannot load
    private final int ccMajor;
    private final int ccMinor;
    private final int multiprocessors;
    private CpuDevice hostDevice;             // the device the host halves of staged buffers report

    /**
     * Opens GPU {@code ordinal} (an ordinal CUDA reports) for {@code dev}, whose copy-stream transfers these
     * resources hold, and waits until the device's stream has done the work issued while opening.
     */
    CudaResources(CudaDevice dev, int ordinal) {
        check("create device", "cuDeviceGet(" + ordinal + ")", cuDeviceGet(device, ordinal));
        byte[] nameBytes = new byte[256];
        check("create device", "cuDeviceGetName", cuDeviceGetName(nameBytes, nameBytes.length, device));
        String card = new String(nameBytes, StandardCharsets.US_ASCII);
        int nul = card.indexOf('\0');
        this.name = "cuda:" + ordinal + " (" + (nul >= 0 ? card.substring(0, nul) : card).trim() + ")";
        this.ccMajor = attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
        this.ccMinor = attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
        this.multiprocessors = attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
        check("create device", "cuDevicePrimaryCtxRetain", cuDevicePrimaryCtxRetain(context, device));
        // All or nothing: each part made is undone, newest first, when a later part fails.
        ArrayDeque<AutoCloseable> made = new ArrayDeque<>();
        made.push(() -> check("undo create device", "cuDevicePrimaryCtxRelease", cuDevicePrimaryCtxRelease(device)));
        try {
            bindContext();
            check("create device", "cuStreamCreate", cuStreamCreate(stream, CUstream_flags.CU_STREAM_NON_BLOCKING));
            made.push(() -> check("undo create device", "cuStreamDestroy", cuStreamDestroy(stream)));
            this.modules = new CudaModules(ccMajor, ccMinor);
            made.push(modules);
            modules.allowDynamicSharedMemory("attn_fwd_flash", CudaLaunch.flashSharedBytes(128));
            this.staging = new PinnedStaging(stream);
            made.push(staging);
            made.push(allocator::close);
            this.errorWord = allocator.allocate(8);
            made.push(errorWord);
            this.sumsqScratch = allocator.allocate(8L * (CudaVectorOps.SUMSQ_BLOCKS + 1));
            made.push(sumsqScratch);
            check("create device", "cuMemsetD8Async(error word)",
                cuMemsetD8Async(errorWord.pointerAt(0), (byte) 0, 8, stream));
            this.transfers = new CudaTransfers(dev, stream);
            made.push(transfers);
            this.cublas = CublasGemm.open(stream);
            if (cublas != null) {
                made.push(cublas);
            }
            bindContext();
            synchronize();
        } catch (Throwable failure) {
            cuStreamSynchronize(stream); // best effort, as in close(): work issued here may still use the memory
            undo(made, failure);
            throw failure;
        }
    }

    /** Closes {@code made} newest first, every part tried; each failure is added to {@code failure} as suppressed. */
    private static void undo(ArrayDeque<AutoCloseable> made, Throwable failure) {
        while (!made.isEmpty()) {
            try {
                made.pop().close();
            } catch (Throwable t) {
                failure.addSuppressed(t);
            }
        }
    }

    private int attribute(int attr) {
        int[] v = new int[1];
        check("create device", "cuDeviceGetAttribute(" + attr + ")", cuDeviceGetAttribute(v, attr, device));
        return v[0];
    }

    /** Makes the context current on the calling thread. */
    void bindContext() {
        check("bind", "cuCtxSetCurrent", cuCtxSetCurrent(context));
    }

    /** Waits for the stream's work, then throws what a kernel recorded; the context must be current. */
    void synchronize() {
        check("synchronize", "cuStreamSynchronize", cuStreamSynchronize(stream));
        throwKernelErrors();
    }

    /** Throws, naming the bad value, what a kernel recorded in the error word (clearing it); nothing when clear. */
    void throwKernelErrors() {
        int[] err = staging.readInts(errorWord.pointerAt(0), 2);
        if (err[0] == 0) {
            return;
        }
        check("synchronize", "cuMemsetD8Async(error word)",
            cuMemsetD8Async(errorWord.pointerAt(0), (byte) 0, 8, stream));
        check("synchronize", "cuStreamSynchronize", cuStreamSynchronize(stream));
        switch (err[0]) {
            case ERR_CE_TARGET -> throw new IllegalArgumentException(
                "crossEntropy: a target lies outside [0, vocab): target=" + err[1]);
            case ERR_EMBEDDING_ID -> throw new IllegalArgumentException(
                "embedding: an id lies outside the table's rows: id=" + err[1]);
            default -> throw new IllegalStateException("unknown kernel error code " + err[0] + " (value " + err[1]
                + ")");
        }
    }

    /** The CPU device that the host tensors of staged buffers belong to (one thread; made on first use). */
    synchronized CpuDevice hostDevice() {
        if (hostDevice == null) {
            hostDevice = new CpuDevice(1);
        }
        return hostDevice;
    }

    /**
     * Frees everything, once the stream's work is done (best effort): the error word and scratch, the allocator
     * (its cache back to the driver), the staging buffer, the transfers, cuBLAS, the modules, the stream, the
     * host device, and last the primary context. Called once, with the context current.
     */
    void close() {
        cuStreamSynchronize(stream);
        errorWord.close();
        sumsqScratch.close();
        allocator.close();
        staging.close();
        transfers.close();
        if (cublas != null) {
            cublas.close();
        }
        modules.close();
        cuStreamDestroy(stream);
        synchronized (this) {
            if (hostDevice != null) {
                hostDevice.close();
            }
        }
        cuDevicePrimaryCtxRelease(device);
    }

    String name() {
        return name;
    }

    int ccMajor() {
        return ccMajor;
    }

    int ccMinor() {
        return ccMinor;
    }

    int multiprocessors() {
        return multiprocessors;
    }

    CUstream stream() {
        return stream;
    }

    CudaAllocator allocator() {
        return allocator;
    }

    CudaModules modules() {
        return modules;
    }

    PinnedStaging staging() {
        return staging;
    }

    CudaStorage errorWord() {
        return errorWord;
    }

    CudaStorage sumsqScratch() {
        return sumsqScratch;
    }

    CudaTransfers transfers() {
        return transfers;
    }

    /** cuBLAS on the device's stream, or {@code null} when it did not load. */
    CublasGemm cublas() {
        return cublas;
    }
}
