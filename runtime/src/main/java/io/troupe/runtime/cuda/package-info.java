/**
 * The CUDA backend: {@link io.troupe.runtime.cuda.CudaDevice} over the JCuda driver API, running
 * Troupe's own kernels (compiled to PTX from {@code runtime/src/main/cuda}), and
 * {@link io.troupe.runtime.cuda.CudaSupport}, which says once and for all whether a GPU is usable.
 */
package io.troupe.runtime.cuda;
