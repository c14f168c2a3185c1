package io.troupe.models.parallel.tp;

import io.troupe.runtime.tensor.Tensor;

/** Shape checks of the parallel layers' weight views. */
final class LinearChecks {
    private LinearChecks() {
    }

    static void shape(String what, Tensor t, long numel) {
        if (t == null) {
            throw new IllegalArgumentException(what + " is missing");
        }
        if (t.numel() != numel) {
            throw new IllegalArgumentException(what + " must hold " + numel + " elements: " + t);
        }
    }
}
