package io.troupe.actors.cluster.snapshot;

import io.troupe.runtime.device.DeviceKind;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;
import java.util.List;
import java.util.function.BooleanSupplier;
import java.util.function.Predicate;

/**
 * Copies a rank's shard into a snapshot and back, byte for byte: for each model chunk its
 * parameters, both optimizer moments (whatever part of them this rank holds: the whole, or its ZeRO
 * segments) and the optimizer's step count. A snapshot restores only into the same rank of the same
 * layout (checked: chunk count and sizes), so the bytes go back where they came from and the run
 * continues bitwise as if nothing happened. The data position needs no saving: a step's batch is a
 * function of the step.
 *
 * <p>Threading: the caller's (the worker's device thread), between steps.
 */
public final class ShardSnapshots {
    /** One model chunk's state: host tensors of float32 (the moments may be a segment of the parameters' size). */
    public record ChunkState(Tensor params, Tensor firstMoment, Tensor secondMoment, long optimizerStep) {
        public ChunkState {
            for (Tensor t : new Tensor[] {params, firstMoment, secondMoment}) {
                if (t.device().kind() != DeviceKind.CPU || t.dtype() != DType.F32) {
                    throw new IllegalArgumentException("snapshots hold host float32 tensors: device=" + t.device().name()
                        + ", dtype=" + t.dtype());
                }
            }
            if (firstMoment.numel() != secondMoment.numel()) {
                throw new IllegalArgumentException("moments differ in size: m=" + firstMoment.numel() + ", v="
                    + secondMoment.numel());
            }
        }
    }

    private ShardSnapshots() {
    }

    /** Bytes of the snapshot of {@code chunks}. */
    public static long lengthBytes(List<ChunkState> chunks) {
        long params = 0;
        long stateElements = 0;
        for (ChunkState c : chunks) {
            params += c.params().numel();
            stateElements += c.firstMoment().numel();
        }
        return lengthBytes(chunks.size(), params, stateElements);
    }

    /**
     * Bytes of the snapshot of {@code chunks} chunks holding {@code params} parameters in all and, per moment,
     * {@code stateElements} elements in all.
     */
    public static long lengthBytes(int chunks, long params, long stateElements) {
        return SnapshotDescriptor.lengthBytes(chunks, params + 2 * stateElements);
    }

    /**
     * Writes {@code chunks} as the snapshot of job {@code jobId}, rank {@code rank}, taken in
     * {@code epoch} after {@code step} committed steps, into {@code store}'s free slot.
     *
     * @return the sealed slot, now the store's latest
     * @throws SnapshotException when the free slot stays pinned by a send past {@code waitNs}
     */
    public static SnapshotBuffer capture(SnapshotStore store, int jobId, int rank, long epoch, long step,
                                         List<ChunkState> chunks, long waitNs) {
        checkChunks(chunks);
        return write(store, store.beginWrite(lengthBytes(chunks), waitNs), jobId, rank, epoch, step, chunks);
    }

    /**
     * As {@link #capture(SnapshotStore, int, int, long, long, List, long)}, into a slot that
     * {@code live} does not keep (see {@link SnapshotStore#beginWrite(long, long, Predicate, BooleanSupplier)}).
     *
     * @throws SnapshotException when no slot frees within {@code waitNs}, or the epoch ended
     */
    public static SnapshotBuffer capture(SnapshotStore store, int jobId, int rank, long epoch, long step,
                                         List<ChunkState> chunks, long waitNs, Predicate<SnapshotBuffer> live,
                                         BooleanSupplier ended) {
        checkChunks(chunks);
        return write(store, store.beginWrite(lengthBytes(chunks), waitNs, live, ended), jobId, rank, epoch, step, chunks);
    }

    private static void checkChunks(List<ChunkState> chunks) {
        if (chunks.isEmpty() || chunks.size() > SnapshotDescriptor.MAX_CHUNKS) {
            throw new IllegalArgumentException("a snapshot holds 1 to " + SnapshotDescriptor.MAX_CHUNKS + " chunks: chunks="
                + chunks.size());
        }
    }

    private static SnapshotBuffer write(SnapshotStore store, SnapshotBuffer b, int jobId, int rank, long epoch, long step,
                                        List<ChunkState> chunks) {
        try {
            b.writeHeader(jobId, rank, epoch, step, chunks.size());
            long at = SnapshotDescriptor.chunkEntryOffset(chunks.size());
            for (int c = 0; c < chunks.size(); c++) {
                ChunkState s = chunks.get(c);
                int e = SnapshotDescriptor.chunkEntryOffset(c);
                b.putLong(e, s.optimizerStep());
                b.putLong(e + 8, s.params().numel());
                b.putLong(e + 16, s.firstMoment().numel());
                for (Tensor t : new Tensor[] {s.params(), s.firstMoment(), s.secondMoment()}) {
                    b.write(at, t.address(), t.lengthBytes());
                    at += t.lengthBytes();
                }
            }
            store.complete(b);
            return b;
        } catch (RuntimeException e) {
            store.abandon(b);
            throw e;
        }
    }

    /**
     * Puts the snapshot in {@code b} back into {@code chunks} (parameters and moments); the
     * optimizers' step counts are returned, one per chunk, for the caller to set.
     *
     * @throws SnapshotException when the snapshot's chunks do not match {@code chunks} (another layout or rank)
     */
    public static long[] restore(SnapshotBuffer b, List<ChunkState> chunks) {
        if (b.chunks() != chunks.size()) {
            throw new SnapshotException(b.describe() + " holds " + b.chunks() + " chunks, this rank has " + chunks.size());
        }
        long[] steps = new long[chunks.size()];
        for (int c = 0; c < chunks.size(); c++) {
            ChunkState s = chunks.get(c);
            int e = SnapshotDescriptor.chunkEntryOffset(c);
            long params = b.getLong(e + 8);
            long state = b.getLong(e + 16);
            if (params != s.params().numel() || state != s.firstMoment().numel()) {
                throw new SnapshotException(b.describe() + " chunk " + c + " holds " + params + " parameters and " + state
                    + " optimizer state elements, this rank has " + s.params().numel() + " and " + s.firstMoment().numel());
            }
            steps[c] = b.getLong(e);
        }
        if (lengthBytes(chunks) != b.lengthBytes()) {
            throw new SnapshotException(b.describe() + " is " + b.lengthBytes() + " bytes, its chunks take "
                + lengthBytes(chunks));
        }
        long at = SnapshotDescriptor.chunkEntryOffset(chunks.size());
        for (ChunkState s : chunks) {
            for (Tensor t : new Tensor[] {s.params(), s.firstMoment(), s.secondMoment()}) {
                b.read(at, t.address(), t.lengthBytes());
                at += t.lengthBytes();
            }
        }
        return steps;
    }
}
