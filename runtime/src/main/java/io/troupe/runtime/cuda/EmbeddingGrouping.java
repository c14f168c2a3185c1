package io.troupe.runtime.cuda;

import static io.troupe.runtime.cuda.CudaLaunch.storage;

import io.troupe.runtime.tensor.Tensor;
import java.util.Arrays;

/**
 * Groups the rows of an embedding backward by id on the host, so the device can sum each table row's
 * gradient in a fixed order (kernel {@code embedding_bwd_sorted}) instead of with float atomics: the
 * ids (a few KiB) come down, a stable counting sort runs here, and one int array goes up:
 * {@code order[rows] | segStart[U+1] | uniqueIds[U]}. The arrays are kept and grown, not reallocated.
 *
 * <p>Threading: the device's issuing thread only.
 */
final class EmbeddingGrouping {
    private int[] ids = new int[0];
    private int[] counts = new int[0];
    private int[] packed = new int[0];

    /**
     * Downloads {@code rows} ids, checks them against {@code tableRows} (naming a bad one), and
     * uploads the grouping into a fresh scratch block, which the caller closes after issuing the
     * kernel. Returns the number of distinct ids U through {@code uniqueOut[0]}.
     */
    CudaStorage group(CudaDevice dev, PinnedStaging staging, Tensor idsTensor, int rows, int tableRows,
                      int[] uniqueOut) {
        CudaStorage src = storage(dev, idsTensor, "embeddingBackward", "ids");
        staging.downloadInts(src, idsTensor.offsetElements() * 4L, idsBuffer(rows), rows);
        int unique = pack(rows, tableRows);
        int total = rows + 2 * unique + 1;
        CudaStorage s = dev.scratch(4L * total);
        staging.upload(packed, total, s, 0);
        uniqueOut[0] = unique;
        return s;
    }

    /** The buffer {@link #pack} reads the ids from (grown to {@code rows}). */
    int[] idsBuffer(int rows) {
        if (ids.length < rows) {
            ids = new int[rows];
        }
        return ids;
    }

    /** The packed result of the last {@link #pack}: order[rows] | segStart[U+1] | uniqueIds[U]. */
    int[] packed() {
        return packed;
    }

    /**
     * Stable counting sort of {@code idsBuffer()[0..rows)} by id into {@link #packed()}; returns the
     * number of distinct ids U. An id outside [0, tableRows) throws, naming it and its row.
     */
    int pack(int rows, int tableRows) {
        if (counts.length < tableRows + 1) {
            counts = new int[tableRows + 1];
        } else {
            Arrays.fill(counts, 0, tableRows + 1, 0);
        }
        for (int r = 0; r < rows; r++) {
            int id = ids[r];
            if (id < 0 || id >= tableRows) {
                throw new IllegalArgumentException("embeddingBackward: id outside the table's " + tableRows
                    + " rows: id=" + id + " at row " + r);
            }
            counts[id + 1]++;
        }
        int unique = 0;
        for (int id = 0; id < tableRows; id++) {
            if (counts[id + 1] > 0) {
                unique++;
            }
            counts[id + 1] += counts[id];   // counts[id] becomes the start of id's rows
        }
        int total = rows + 2 * unique + 1;
        if (packed.length < total) {
            packed = new int[total];
        }
        int segBase = rows;
        int idBase = rows + unique + 1;
        int u = 0;
        for (int id = 0; id < tableRows; id++) {
            if (counts[id + 1] > counts[id]) {
                packed[segBase + u] = counts[id];
                packed[idBase + u] = id;
                u++;
            }
        }
        packed[segBase + unique] = rows;
        for (int r = 0; r < rows; r++) {   // stable: rows of one id stay in ascending order
            packed[counts[ids[r]]++] = r;
        }
        return unique;
    }
}
