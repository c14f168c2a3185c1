package io.troupe.runtime.cpu;

import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.openblas.global.openblas_nolapack;

/**
 * OpenBLAS sgemm on raw off-heap addresses (no Java arrays: passing arrays costs ~40%).
 * OpenBLAS runs single-threaded; {@link CpuDevice} splits work across its own thread budget, so
 * several CPU devices in one JVM never fight over OpenBLAS's global thread count.
 */
final class CpuBlas {
    private static final ThreadLocal<AddressPointer[]> POINTERS =
        ThreadLocal.withInitial(() ->
            new AddressPointer[] {new AddressPointer(), new AddressPointer(), new AddressPointer()});

    static {
        openblas_nolapack.blas_set_num_threads(1);
    }

    private CpuBlas() {
    }

    /** Forces the native library to load (and fail early with a clear error if it cannot). */
    static String describe() {
        return "OpenBLAS";
    }

    /**
     * Row-major {@code C = alpha op(A) op(B) + beta C} at raw addresses.
     */
    static void sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
                      long a, int lda, long b, int ldb, float beta, long c, int ldc) {
        if (m == 0 || n == 0) {
            return;
        }
        AddressPointer[] p = POINTERS.get();
        openblas_nolapack.cblas_sgemm(openblas_nolapack.CblasRowMajor,
            transA ? openblas_nolapack.CblasTrans : openblas_nolapack.CblasNoTrans,
            transB ? openblas_nolapack.CblasTrans : openblas_nolapack.CblasNoTrans,
            m, n, k, alpha, p[0].at(a), lda, p[1].at(b), ldb, beta, p[2].at(c), ldc);
    }

    /** A FloatPointer whose address is set per call, so steady-state gemm allocates nothing. */
    private static final class AddressPointer extends FloatPointer {
        AddressPointer at(long addr) {
            this.address = addr;
            this.position = 0;
            this.limit = 0;
            this.capacity = 0;
            return this;
        }
    }
}
