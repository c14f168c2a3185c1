package io.troupe.actors.cluster.snapshot;

import io.troupe.runtime.device.Device;
import io.troupe.runtime.device.DeviceKind;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;
import java.util.List;
import java.util.function.BooleanSupplier;
import java.util.function.Predicate;

/**
 * Copies a rank's shard into a snapshot and back, byte for byte and in one copy each way (a memcpy from host
 * tensors, the device's copy from a GPU's, never through a host copy of the tensor): for each model chunk its
 * parameters, both optimizer moments (whatever part of them this rank holds: the whole, or its ZeRO
 * segments) and the optimizer's step count. A snapshot restores only into the same rank of the same
 * layout (checked: chunk count and sizes), so the bytes go back where they came from and the run
 * continues bitwise as if nothing happened. The data position needs no saving: a step's batch is a
 * function of the step.
 *
 * <p>Threading: the caller's (the worker's device thread), between steps.
 */
public final class ShardSnapshots {
    /**
     * One model chunk's state: float32 tensors (the moments may be a segment of the parameters' size). Host
     * tensors (a CPU device's) are copied to and from a snapshot with a memcpy; the tensors of a GPU with the
     * device's own copy, straight between its memory and the snapshot's ({@link SnapshotBuffer#download}), for
     * which {@code host} is the CPU device the snapshot's memory is reported on (never asked to allocate).
     */
    public record ChunkState(Tensor params, Tensor firstMoment, Tensor secondMoment, long optimizerStep, Device host) {
        public ChunkState {
            for (Tensor t : new Tensor[] {params, firstMoment, secondMoment}) {
                if (t.dtype() != DType.F32) {
                    throw new IllegalArgumentException("snapshots hold float32 tensors: device=" + t.device().name()
                        + ", dtype=" + t.dtype());
                }
                if (!onHost(t) && (host == null || host.kind() != DeviceKind.CPU)) {
                    throw new IllegalArgumentException("a snapshot of a tensor on " + t.device().name()
                        + " needs a CPU device for the snapshot's memory: host="
                        + (host == null ? "none" : host.name()));
                }
            }
            if (firstMoment.numel() != secondMoment.numel()) {
                throw new IllegalArgumentException("moments differ in size: m=" + firstMoment.numel() + ", v="
                    + secondMoment.numel());
            }
        }

        /** The state of a chunk whose tensors are host tensors. */
        public ChunkState(Tensor params, Tensor firstMoment, Tensor secondMoment, long optimizerStep) {
            this(params, firstMoment, secondMoment, optimizerStep, null);
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
        return write(store, store.beginWrite(lengthBytes(chunks), waitNs, live, ended), jobId, rank, epoch, step,
            chunks);
    }

    private static void checkChunks(List<ChunkState> chunks) {
        if (chunks.isEmpty() || chunks.size() > SnapshotDescriptor.MAX_CHUNKS) {
            throw new IllegalArgumentException("a snapshot holds 1 to " + SnapshotDescriptor.MAX_CHUNKS
                + " chunks: chunks=" + chunks.size());
        }
    }

    private static SnapshotBuffer write(SnapshotStore store, SnapshotBuffer b, int jobId, int rank, long epoch,
                                        long step, List<ChunkState> chunks) {
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
                    if (onHost(t)) {
                        b.write(at, t.address(), t.lengthBytes());
                    } else {
                        b.download(at, t, s.host());
                    }
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
            throw new SnapshotException(b.describe() + " holds " + b.chunks() + " chunks, this rank has "
                + chunks.size());
        }
        long[] steps = new long[chunks.size()];
        for (int c = 0; c < chunks.size(); c++) {
            ChunkState s = chunks.get(c);
            int e = SnapshotDescriptor.chunkEntryOffset(c);
            long params = b.getLong(e + 8);
            long state = b.getLong(e + 16);
            if (params != s.params().numel() || state != s.firstMoment().numel()) {
                throw new SnapshotException(b.describe() + " chunk " + c + " holds " + params + " parameters and "
                    + state + " optimizer state elements, this rank has " + s.params().numel() + " and "
                    + s.firstMoment().numel());
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
                if (onHost(t)) {
                    b.read(at, t.address(), t.lengthBytes());
                } else {
                    b.upload(at, t, s.host());
                }
                at += t.lengthBytes();
            }
        }
        return steps;
    }

    /** Whether {@code t} is host memory the CPU copies with a memcpy (else a GPU's tensor: the device copies it). */
    private static boolean onHost(Tensor t) {
        return t.device().kind() == DeviceKind.CPU;
    }
}
