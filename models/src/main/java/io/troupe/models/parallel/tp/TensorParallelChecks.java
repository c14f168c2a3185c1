package io.troupe.models.parallel.tp;

import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;

/** Argument checks shared by the group implementations, with the bad values in the message. */
final class TensorParallelChecks {
    private TensorParallelChecks() {
    }

    static void f32(String op, Tensor t) {
        if (t.dtype() != DType.F32) {
            throw new IllegalArgumentException(op + " needs float32 tensors: " + t);
        }
    }

    /** {@code full} must hold exactly {@code n} segments of {@code shard}'s size. */
    static void segments(String op, Tensor full, Tensor shard, int n) {
        f32(op, full);
        f32(op, shard);
        if (full.numel() != (long) n * shard.numel()) {
            throw new IllegalArgumentException(op + ": the full tensor must hold tp shards: full numel=" + full.numel()
                + ", shard numel=" + shard.numel() + ", tp=" + n);
        }
    }

    /** {@code what} must divide by {@code tp}; the message names both numbers. */
    static int divide(String what, int value, int tp) {
        if (tp < 1 || value % tp != 0) {
            throw new IllegalArgumentException(what + " must be divisible by tp: " + what + "=" + value + ", tp=" + tp);
        }
        return value / tp;
    }
}
