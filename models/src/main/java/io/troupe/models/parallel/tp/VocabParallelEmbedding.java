package io.troupe.models.parallel.tp;

import io.troupe.runtime.device.Device;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;

/**
 * Token embedding with the vocabulary split by rows: member i holds rows
 * {@code [i·V/tp, (i+1)·V/tp)} of the {@code (V, C)} table. Each member looks up the ids in its range
 * and writes zeros for the others; g = {@link TensorParallelRegions#reduceFromTensorParallelRegion}
 * sums the members' outputs into the full embedding (exactly: one member contributes each row).
 * Backward is local: each member accumulates the rows of its own ids. With tp = 1 it is the plain
 * lookup.
 *
 * <p>The masking runs on any device with the device's own lookup: the ids are mapped on the host to
 * local rows, with out-of-range ids sent to an extra zero row of a {@code (V/tp + 1, C)} copy of the
 * shard ({@code localIds}, caller-owned per micro-batch, keeps the mapping for backward).
 * Threading: the member's device executor.
 */
public final class VocabParallelEmbedding implements AutoCloseable {
    private final Device dev;
    private final TensorParallelGroup group;
    private final int dim;
    private final int vocabLocal;
    private final int vocabStart;
    private final Tensor table;
    private final Tensor dTable;
    private final HostIds hostIds;
    private final Tensor padded;      // (V/tp + 1, C): the shard, then a zero row
    private final Tensor paddedGrad;  // (V/tp + 1, C)
    private final SequenceParallel sp;

    /** Without sequence parallelism; see the full constructor. */
    public VocabParallelEmbedding(Device dev, TensorParallelGroup group, int vocab, int dim, int maxRows, Tensor table,
                                  Tensor dTable) {
        this(dev, group, vocab, dim, maxRows, table, dTable, null);
    }

    /**
     * @param vocab   the global vocabulary V; must divide by tp
     * @param maxRows the most tokens one call looks up
     * @param table   this member's rows, {@code (V/tp, C)}
     * @param sp      sequence parallelism (the output leaves split by tokens: a reduce-scatter), or {@code null}
     */
    public VocabParallelEmbedding(Device dev, TensorParallelGroup group, int vocab, int dim, int maxRows, Tensor table,
                                  Tensor dTable, SequenceParallel sp) {
        this.sp = group.size() > 1 ? sp : null;
        this.dev = dev;
        this.group = group;
        this.dim = dim;
        this.vocabLocal = TensorParallelChecks.divide("vocabulary", vocab, group.size());
        this.vocabStart = group.index() * vocabLocal;
        LinearChecks.shape("embedding shard", table, (long) vocabLocal * dim);
        LinearChecks.shape("embedding shard grad", dTable, (long) vocabLocal * dim);
        this.table = table;
        this.dTable = dTable;
        boolean split = group.size() > 1;
        this.hostIds = split ? new HostIds(dev, vocab, maxRows) : null;
        this.padded = split ? dev.allocate(vocabLocal + 1, dim) : null;
        this.paddedGrad = split ? dev.allocate(vocabLocal + 1, dim) : null;
        if (split) {
            dev.fill(padded, 0f);
        }
    }

    /** A caller-owned buffer for one micro-batch's local ids, {@code (rows)} I32. */
    public Tensor allocateLocalIds(int rows) {
        return dev.allocate(DType.I32, rows);
    }

    /**
     * {@code out (N, C) = table[ids]} (under sequence parallelism: this member's N/tp tokens of it).
     *
     * @param localIds this micro-batch's buffer from {@link #allocateLocalIds}; read again by backward
     */
    public void forward(Tensor ids, Tensor localIds, Tensor out, int rows) {
        if (group.size() == 1) {
            dev.embedding(out, ids, table, rows, dim, false);                                   // (N, C)
            return;
        }
        int[] global = hostIds.read(ids, rows);
        int[] local = new int[rows];
        for (int r = 0; r < rows; r++) {
            int l = global[r] - vocabStart;
            local[r] = l >= 0 && l < vocabLocal ? l : vocabLocal;                               // else: the zero row
        }
        dev.copyFromHost(local, localIds.view(0, rows));
        dev.copy(table, padded.view(0, vocabLocal, dim));
        if (sp == null) {
            dev.embedding(out, localIds, padded, rows, dim, false);                             // (N, C), partial
            TensorParallelRegions.reduceFromTensorParallelRegion(group, out);
        } else {
            Tensor partial = sp.scratch(rows, dim);
            dev.embedding(partial, localIds, padded, rows, dim, false);                         // (N, C), partial
            TensorParallelRegions.reduceScatterToSequenceParallelRegion(group, partial,
                out.view(0, rows / group.size(), dim));                                         // (N/tp, C)
        }
    }

    /** {@code dTable_i[id - start] += dOut[r]} for each of this member's ids; local, no communication. */
    public void backwardWeight(Tensor dOut, Tensor ids, Tensor localIds, int rows) {
        if (group.size() == 1) {
            dev.embeddingBackward(dTable, dOut, ids, rows, dim);
            return;
        }
        dev.fill(paddedGrad, 0f);
        Tensor dy = sp == null ? dOut : sp.gather(dOut, rows, dim);                           // (N, C)
        dev.embeddingBackward(paddedGrad, dy, localIds, rows, dim);
        dev.axpy(1f, paddedGrad.view(0, vocabLocal, dim), dTable);
    }

    @Override
    public void close() {
        if (hostIds != null) {
            hostIds.close();
            padded.close();
            paddedGrad.close();
        }
    }
}
