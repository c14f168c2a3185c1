package io.troupe.runtime.cuda;

/** How {@link CudaDevice} multiplies float32 matrices. BF16 tensors always take the BF16 path. */
public enum GemmPrecision {
    /** Full float32 on CUDA cores (Troupe's tiled SGEMM). */
    FP32,
    /** Operands rounded to TF32 (10-bit mantissa) on tensor cores, float32 accumulation. */
    TF32,
    /** Operands converted to bfloat16 on the device, tensor cores, float32 accumulation. */
    BF16
}
