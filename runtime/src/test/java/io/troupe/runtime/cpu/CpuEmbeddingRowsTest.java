package io.troupe.runtime.cpu;

import static io.troupe.runtime.cpu.CpuMemory.UNSAFE;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The staged embedding row adds bitwise against their element-by-element references, repeated ids included. */
class CpuEmbeddingRowsTest {
    @Test
    @Timeout(30)
    void shouldMatchTheElementwiseFormsBitwise() {
        Random rnd = new Random(15);
        for (int dim : new int[] {1, 7, 128, 2050}) {
            int rows = 37;
            int tableRows = 5;  // few rows: ids repeat, so the scatter's row order matters
            try (CpuStorage ids = new CpuStorage(4L * rows); CpuStorage table = storage(rnd, (long) tableRows * dim);
                 CpuStorage rowsIn = storage(rnd, (long) rows * dim)) {
                for (int r = 0; r < rows; r++) {
                    UNSAFE.putInt(ids.address() + 4L * r, rnd.nextInt(tableRows));
                }
                try (CpuStorage a = copy(rowsIn, (long) rows * dim); CpuStorage b = copy(rowsIn, (long) rows * dim)) {
                    CpuTokenRows.addTableRowsReference(a.address(), ids.address(), table.address(), 3, rows, dim);
                    CpuTokenRows.addTableRows(b.address(), ids.address(), table.address(), 3, rows, dim);
                    same("addTableRows dim=" + dim, a, b, (long) rows * dim);
                }
                int c0 = dim / 3;
                long tn = (long) tableRows * dim;
                try (CpuStorage a = copy(table, tn); CpuStorage b = copy(table, tn)) {
                    CpuTokenRows.scatterAddRowsReference(a.address(), rowsIn.address(), ids.address(), rows, dim, c0,
                        dim);
                    CpuTokenRows.scatterAddRows(b.address(), rowsIn.address(), ids.address(), rows, dim, c0, dim);
                    same("scatterAddRows dim=" + dim, a, b, tn);
                }
            }
        }
    }

    private static CpuStorage storage(Random rnd, long n) {
        CpuStorage s = new CpuStorage(4 * n);
        for (long i = 0; i < n; i++) {
            UNSAFE.putFloat(s.address() + 4 * i, (float) rnd.nextGaussian());
        }
        return s;
    }

    private static CpuStorage copy(CpuStorage src, long n) {
        CpuStorage s = new CpuStorage(4 * n);
        UNSAFE.copyMemory(src.address(), s.address(), 4 * n);
        return s;
    }

    private static void same(String what, CpuStorage want, CpuStorage got, long n) {
        for (long i = 0; i < n; i++) {
            assertEquals(Float.floatToRawIntBits(UNSAFE.getFloat(want.address() + 4 * i)),
                Float.floatToRawIntBits(UNSAFE.getFloat(got.address() + 4 * i)), what + " at " + i);
        }
    }
}
