package io.troupe.runtime.device;

import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;

/**
 * The rows of one decoding step as the paged ops read them ({@link Device#pagedKvWrite},
 * {@link Device#pagedAttention}): row r is one token at position {@code positions[r]} of the
 * sequence whose block table is row {@code rowTable[r]} of {@code blockTables}.
 *
 * <pre>
 * positions   (rows)                  I32   the token's position p (it attends to [0, p] of its sequence)
 * rowTable    (rows)                  I32   the row's sequence: its table's index in blockTables
 * blockTables (tables, maxBlocks)     I32   physical block of each logical block; entries past a
 *                                           sequence's blocks are never read
 * </pre>
 *
 * Several rows may share a table (a prefill chunk): each attends causally to its own position.
 * The host arrays are kept beside the device tensors (a device that cannot run the ops itself takes
 * the reference loops on the host copies); {@link #set} uploads them. Reused from step to step; owned
 * by the thread that issues the device's calls.
 */
public final class PagedRows implements AutoCloseable {
    private final Device device;
    private final int maxBlocks;
    private int rows;
    private int tables;
    private int[] positions = new int[0];
    private int[] rowTable = new int[0];
    private int[] blockTables = new int[0];
    private Tensor positionsOnDevice;
    private Tensor rowTableOnDevice;
    private Tensor blockTablesOnDevice;

    /** Rows over sequences of at most {@code maxBlocks} blocks each, on {@code device}. */
    public PagedRows(Device device, int maxBlocks) {
        if (maxBlocks < 1) {
            throw new IllegalArgumentException("maxBlocks must be >= 1: maxBlocks=" + maxBlocks);
        }
        this.device = device;
        this.maxBlocks = maxBlocks;
    }

    /**
     * Takes the first {@code rows} entries of {@code positions} and {@code rowTable} and the first
     * {@code tables} rows of {@code blockTables} (row stride {@link #maxBlocks}), checks them and
     * uploads them. The arrays are copied.
     */
    public void set(int rows, int[] positions, int[] rowTable, int tables, int[] blockTables) {
        if (rows < 0 || tables < 0 || positions.length < rows || rowTable.length < rows
            || blockTables.length < (long) tables * maxBlocks) {
            throw new IllegalArgumentException("paged rows: rows=" + rows + ", tables=" + tables + ", positions "
                + positions.length + ", rowTable " + rowTable.length + ", blockTables " + blockTables.length
                + " (maxBlocks " + maxBlocks + ")");
        }
        for (int r = 0; r < rows; r++) {
            if (positions[r] < 0 || rowTable[r] < 0 || rowTable[r] >= tables) {
                throw new IllegalArgumentException("paged row " + r + ": position " + positions[r] + ", table "
                    + rowTable[r] + " of " + tables);
            }
        }
        ensureCapacity(rows, tables);
        this.rows = rows;
        this.tables = tables;
        System.arraycopy(positions, 0, this.positions, 0, rows);
        System.arraycopy(rowTable, 0, this.rowTable, 0, rows);
        System.arraycopy(blockTables, 0, this.blockTables, 0, tables * maxBlocks);
        device.copyFromHost(this.positions, positionsOnDevice);
        device.copyFromHost(this.rowTable, rowTableOnDevice);
        device.copyFromHost(this.blockTables, blockTablesOnDevice);
    }

    private void ensureCapacity(int rows, int tables) {
        if (this.positions.length < Math.max(1, rows)) {
            int cap = Math.max(Math.max(1, rows), 2 * this.positions.length);
            closeTensor(positionsOnDevice);
            closeTensor(rowTableOnDevice);
            this.positions = new int[cap];
            this.rowTable = new int[cap];
            positionsOnDevice = device.allocate(DType.I32, cap);
            rowTableOnDevice = device.allocate(DType.I32, cap);
        }
        if (this.blockTables.length < Math.max(1, tables) * maxBlocks) {
            int cap = Math.max(Math.max(1, tables), 2 * (this.blockTables.length / maxBlocks));
            closeTensor(blockTablesOnDevice);
            this.blockTables = new int[cap * maxBlocks];
            blockTablesOnDevice = device.allocate(DType.I32, cap * maxBlocks);
        }
    }

    private static void closeTensor(Tensor t) {
        if (t != null) {
            t.close();
        }
    }

    public int rows() {
        return rows;
    }

    public int tables() {
        return tables;
    }

    /** Entries per row of {@link #blockTables}. */
    public int maxBlocks() {
        return maxBlocks;
    }

    /** Host copy: row r's position (the array may be longer than {@link #rows}). */
    public int[] positions() {
        return positions;
    }

    /** Host copy: row r's table index. */
    public int[] rowTable() {
        return rowTable;
    }

    /** Host copy: (tables, maxBlocks) physical block ids. */
    public int[] blockTables() {
        return blockTables;
    }

    public Tensor positionsOnDevice() {
        return positionsOnDevice;
    }

    public Tensor rowTableOnDevice() {
        return rowTableOnDevice;
    }

    public Tensor blockTablesOnDevice() {
        return blockTablesOnDevice;
    }

    /** Physical block holding position {@code p} of row r's sequence, for blocks of {@code blockSize} tokens. */
    public int blockOf(int r, int p, int blockSize) {
        return blockTables[rowTable[r] * maxBlocks + p / blockSize];
    }

    @Override
    public void close() {
        closeTensor(positionsOnDevice);
        closeTensor(rowTableOnDevice);
        closeTensor(blockTablesOnDevice);
        positionsOnDevice = null;
        rowTableOnDevice = null;
        blockTablesOnDevice = null;
    }
}
