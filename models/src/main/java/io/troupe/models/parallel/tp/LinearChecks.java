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

    /**
     * Rows in {@code block}, a block of whole rows of {@code width} elements starting at row
     * {@code firstRow} of a weight with {@code totalRows} rows.
     */
    static int rowBlock(String what, Tensor block, int width, int firstRow, int totalRows) {
        if (block == null) {
            throw new IllegalArgumentException(what + " is missing");
        }
        long n = block.numel() / width;
        if (n * width != block.numel() || n < 1 || firstRow < 0 || firstRow + n > totalRows) {
            throw new IllegalArgumentException(what + " must be whole rows of " + width + " elements within "
                + totalRows + " rows: firstRow=" + firstRow + ", " + block);
        }
        return (int) n;
    }
}
