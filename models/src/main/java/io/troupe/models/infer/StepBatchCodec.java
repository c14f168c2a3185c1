package io.troupe.models.infer;

import org.agrona.DirectBuffer;
import org.agrona.MutableDirectBuffer;

/**
 * A step's plan on the wire, for pipeline stages in other threads or processes: what
 * {@link StepBatch} holds (each row's token and position, the block table of its sequence, the rows
 * whose logits are wanted), as 4-byte integers. Rows of one sequence are consecutive in a step, so a
 * table is written once for each run of rows that share it. A stage decodes it into a batch of its
 * own and indexes its own KV cache with the same block ids, which the first stage allocated.
 *
 * <p>Layout (ints): magic, rows n, logit rows r, tables t; n x (token, position, table index); r x
 * logit row; t x (block count, block ids...). Nothing read is trusted: counts, indices and block ids
 * are checked against the stage's limits before use, and a bad value is named.
 */
public final class StepBatchCodec {
    /** First int of every encoded plan ("TrSB"). */
    public static final int MAGIC = 0x54725342;

    private StepBatchCodec() {
    }

    /** Bytes {@link #encode} writes for {@code b}, at most. */
    public static int maxBytes(StepBatch b) {
        long ints = 4L + 3L * b.size() + b.logitCount();
        BlockTable previous = null;
        for (int i = 0; i < b.size(); i++) {
            BlockTable t = b.table(i);
            if (t != previous) {
                ints += 1 + t.size();
                previous = t;
            }
        }
        if (4 * ints > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("step plan too large to encode: " + ints + " ints");
        }
        return (int) (4 * ints);
    }

    /** Writes {@code b} at {@code offset}; returns the bytes written ({@link #maxBytes} at most). */
    public static int encode(StepBatch b, MutableDirectBuffer buf, int offset) {
        int n = b.size();
        int r = b.logitCount();
        int at = offset + 16;
        int tables = 0;
        BlockTable previous = null;
        for (int i = 0; i < n; i++) {
            if (b.table(i) != previous) {
                previous = b.table(i);
                tables++;
            }
            buf.putInt(at, b.token(i));
            buf.putInt(at + 4, b.position(i));
            buf.putInt(at + 8, tables - 1);
            at += 12;
        }
        for (int j = 0; j < r; j++) {
            buf.putInt(at, b.logitRow(j));
            at += 4;
        }
        previous = null;
        for (int i = 0; i < n; i++) {
            BlockTable t = b.table(i);
            if (t == previous) {
                continue;
            }
            previous = t;
            buf.putInt(at, t.size());
            at += 4;
            for (int k = 0; k < t.size(); k++) {
                buf.putInt(at, t.block(k));
                at += 4;
            }
        }
        buf.putInt(offset, MAGIC);
        buf.putInt(offset + 4, n);
        buf.putInt(offset + 8, r);
        buf.putInt(offset + 12, tables);
        return at - offset;
    }

    /**
     * Reads a plan written by {@link #encode} from {@code length} bytes at {@code offset} into
     * {@code into} (cleared first), checking it against the stage's cache: every block id in
     * {@code [0, numBlocks)}, every position in {@code [0, seqLen)} and covered by its table, every
     * token in {@code [0, vocab)}. Returns the bytes read.
     *
     * @throws IllegalArgumentException naming the first bad value (a corrupt or foreign frame)
     */
    public static int decode(DirectBuffer buf, int offset, int length, StepBatch into, int numBlocks, int blockSize,
                             int seqLen, int vocab) {
        into.clear();
        if (length < 16) {
            throw new IllegalArgumentException("step plan of " + length + " bytes is shorter than its 16-byte header");
        }
        int magic = buf.getInt(offset);
        if (magic != MAGIC) {
            throw new IllegalArgumentException(String.format("not a step plan: magic %08x, expected %08x", magic,
                MAGIC));
        }
        int n = buf.getInt(offset + 4);
        int r = buf.getInt(offset + 8);
        int t = buf.getInt(offset + 12);
        long fixed = 16L + 12L * Math.max(n, 0) + 4L * Math.max(r, 0) + 4L * Math.max(t, 0);
        if (n < 1 || r < 0 || r > n || t < 1 || t > n || fixed > length) {
            throw new IllegalArgumentException("bad step plan header: rows=" + n + ", logitRows=" + r + ", tables="
                + t + " in " + length + " bytes");
        }
        int[] tableIndex = new int[n];
        int[] tokens = new int[n];
        int[] positions = new int[n];
        int at = offset + 16;
        for (int i = 0; i < n; i++, at += 12) {
            tokens[i] = check("token", buf.getInt(at), vocab, i);
            positions[i] = check("position", buf.getInt(at + 4), seqLen, i);
            tableIndex[i] = check("table index", buf.getInt(at + 8), t, i);
        }
        boolean[] wanted = new boolean[n];
        int lastWanted = -1;
        for (int j = 0; j < r; j++, at += 4) {
            int row = check("logit row", buf.getInt(at), n, j);
            if (row <= lastWanted) {
                throw new IllegalArgumentException("logit rows must increase: row " + row + " after " + lastWanted);
            }
            wanted[row] = true;
            lastWanted = row;
        }
        BlockTable[] tables = new BlockTable[t];
        int end = offset + length;
        for (int k = 0; k < t; k++) {
            if (at + 4 > end) {
                throw new IllegalArgumentException("step plan truncated in block table " + k);
            }
            int count = buf.getInt(at);
            at += 4;
            if (count < 1 || count > numBlocks) {
                throw new IllegalArgumentException("bad block count " + count + " in table " + k + " (cache has "
                    + numBlocks + " blocks)");
            }
            if (at + 4L * count > end) {
                throw new IllegalArgumentException("step plan truncated in block table " + k + ": " + count
                    + " blocks need " + 4L * count + " bytes, " + (end - at) + " left");
            }
            BlockTable table = new BlockTable();
            for (int b = 0; b < count; b++, at += 4) {
                table.add(check("block id", buf.getInt(at), numBlocks, b));
            }
            tables[k] = table;
        }
        for (int i = 0; i < n; i++) {
            BlockTable table = tables[tableIndex[i]];
            if (positions[i] / blockSize >= table.size()) {
                throw new IllegalArgumentException("row " + i + " at position " + positions[i] + " is past its table's "
                    + table.size() + " blocks of " + blockSize);
            }
            into.add(tokens[i], positions[i], table, wanted[i]);
        }
        return at - offset;
    }

    private static int check(String what, int value, int bound, int index) {
        if (value < 0 || value >= bound) {
            throw new IllegalArgumentException(what + " " + value + " at " + index + " outside [0, " + bound + ")");
        }
        return value;
    }
}
