package io.troupe.actors.cluster.snapshot;

import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.transport.FrameKind;
import io.troupe.runtime.transport.ReceiveSlot;
import io.troupe.runtime.transport.TensorSender;
import io.troupe.runtime.transport.TransportEndpoint;
import io.troupe.runtime.transport.WorkerTransport;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.agrona.DirectBuffer;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.agrona.concurrent.IdleStrategy;

/**
 * The pieces a {@link SnapshotExchange}'s snapshots travel in, at both ends of its stream: the piece
 * size a receiver takes ({@link #pieceShift(long)}) and the key each piece carries ({@link #pieceKey}),
 * the send thread's loop that sends a snapshot piece by piece, and the agent thread's reassembly of
 * the pieces into a copy in the rank's store, which then counts as arrived for the exchange's reports.
 */
final class SnapshotPieces {
    /** How long the receiver waits for a copy's slot still being sent on (a restore): the copy is dropped after. */
    private static final long RECEIVE_SLOT_WAIT_NS = TimeUnit.SECONDS.toNanos(2);
    /** The largest piece a snapshot is sent in: a receiver reassembles one piece at a time in its budget. */
    static final long MAX_PIECE_BYTES = 1L << SnapshotExchange.MAX_PIECE_SHIFT;

    /**
     * log2 of the piece size a receiver with {@code receiveBudgetBytes} takes snapshots in: at most
     * {@link #MAX_PIECE_BYTES} and a quarter of its budget, so a piece always fits its reassembly memory beside
     * the other tensors in flight, whatever the size of the snapshot.
     */
    static int pieceShift(long receiveBudgetBytes) {
        long piece = Math.max(1L << SnapshotExchange.MIN_PIECE_SHIFT,
            Math.min(MAX_PIECE_BYTES, receiveBudgetBytes / 4));
        return 63 - Long.numberOfLeadingZeros(piece);
    }

    /** A piece's tensor key: the snapshot's rank, the piece size's log2, the piece count and index. */
    static long pieceKey(int rank, int shift, long count, long index) {
        if (rank < 0 || rank >= 1 << 16 || count >= 1L << 21 || index < 0 || index >= count) {
            throw new IllegalArgumentException("snapshot piece out of range: rank=" + rank + ", count=" + count
                + ", index=" + index);
        }
        return (long) rank << 48 | (long) shift << 42 | count << 21 | index;
    }

    /** A snapshot being reassembled from its pieces (agent thread only). */
    private static final class Assembly {
        final int source;
        final SnapshotStore store;
        final SnapshotBuffer buffer;
        final int rank;
        final long step;
        final long epoch;
        final int jobId;
        final long count;
        long next = 1;

        Assembly(int source, SnapshotStore store, SnapshotBuffer buffer, int rank, long step, long epoch, int jobId,
                 long count) {
            this.source = source;
            this.store = store;
            this.buffer = buffer;
            this.rank = rank;
            this.step = step;
            this.epoch = epoch;
            this.jobId = jobId;
            this.count = count;
        }
    }

    /** Snapshots being reassembled, by the rank they are of (agent thread only). */
    private final Map<Integer, Assembly> assembling = new HashMap<>();
    private final SnapshotExchange exchange;
    private final WorkerTransport transport;
    private final Consumer<String> log;
    private volatile long sentBytes;

    SnapshotPieces(SnapshotExchange exchange, WorkerTransport transport, Consumer<String> log) {
        this.exchange = exchange;
        this.transport = transport;
        this.log = log;
    }

    /** Snapshot bytes sent (its own and restore copies). */
    long sentBytes() {
        return sentBytes;
    }

    /**
     * Send thread: the snapshot in pieces of the receiver's size ({@code 2^pieceShifts[toRank]} bytes), in order,
     * each a frame whose step field carries the snapshot's length and whose key {@link #pieceKey}; given up when
     * the epoch changes.
     */
    void send(SnapshotExchange.Binding b, SnapshotBuffer snap, int toRank) {
        TensorSender sender = transport.sender(toRank);
        long epoch = b.job().epoch();
        if (sender == null || sender.epoch() != epoch || sender.jobId() != b.job().jobId()) {
            sender = transport.connect(toRank, TransportEndpoint.parse(b.endpoints().get(toRank)), epoch);
        }
        long bytes = snap.lengthBytes();
        long t0 = System.nanoTime();
        int shift = Math.min(b.pieceShifts()[toRank], snap.segmentShift()); // a piece lies in one segment
        long count = (bytes + (1L << shift) - 1) >>> shift;
        IdleStrategy idle = new BackoffIdleStrategy(64, 16, 1_000, 100_000);
        for (long i = 0; i < count; i++) {
            long off = i << shift;
            long len = Math.min(1L << shift, bytes - off);
            sender.begin(FrameKind.CONTROL, bytes, pieceKey(snap.rank(), shift, count, i), DType.I8,
                new int[] {(int) len}, 1, snap.address(off, len), len);
            while (sender.isSending()) {
                if (exchange.binding() != b) {
                    return; // the epoch ended; the next epoch's connect replaces this sender
                }
                idle.idle(sender.doSend());
            }
        }
        sentBytes += bytes;
        SnapshotCounters.sent(bytes, System.nanoTime() - t0);
    }

    // ------------------------------------------------------------------ receiver (agent thread)

    /**
     * Agent thread: a piece of a snapshot. The first carries the snapshot's header (rank, step, epoch, job) and
     * starts its copy in the rank's store; the others follow in order from the same source, each copied at its
     * offset; the last completes the copy. A piece out of order, or a new first piece of the same rank, gives up
     * the copy being assembled.
     */
    void onTensorReady(ReceiveSlot slot) {
        try {
            long key = slot.tensorKey();
            int shift = (int) (key >>> 42 & 0x3f);
            long count = key >>> 21 & 0x1f_ffffL;
            long index = key & 0x1f_ffffL;
            int keyRank = (int) (key >>> 48 & 0xffff);
            long total = slot.step();
            long off = index << shift;
            if (slot.kind() != FrameKind.CONTROL || count == 0 || index >= count
                || total < SnapshotDescriptor.HEADER_LENGTH || off + slot.lengthBytes() > total
                || index < count - 1 && slot.lengthBytes() != 1L << shift) {
                log.accept("snapshot stream dropped a " + slot.kind() + " frame of " + slot.lengthBytes()
                    + " bytes from rank " + slot.sourceRank() + " (piece " + index + " of " + count + " of " + total
                    + " bytes)");
                return;
            }
            Assembly a;
            if (index == 0) {
                if (slot.lengthBytes() < Math.min(total, SnapshotDescriptor.HEADER_LENGTH)) {
                    log.accept("snapshot stream dropped a first piece of " + slot.lengthBytes() + " bytes from rank "
                        + slot.sourceRank() + ": shorter than the snapshot header");
                    return;
                }
                DirectBuffer in = slot.buffer();
                int rank = in.getInt(SnapshotDescriptor.RANK_OFFSET);
                long step = in.getLong(SnapshotDescriptor.STEP_OFFSET);
                long epoch = in.getLong(SnapshotDescriptor.EPOCH_OFFSET);
                int jobId = in.getInt(SnapshotDescriptor.JOB_ID_OFFSET);
                if (rank != keyRank) {
                    log.accept("snapshot stream dropped a first piece from rank " + slot.sourceRank()
                        + ": its header names rank " + rank + ", its key rank " + keyRank);
                    return;
                }
                giveUp(assembling.remove(rank), "a new copy of rank " + rank + "'s snapshot began");
                SnapshotExchange.Binding told = exchange.binding();
                SnapshotStore store = exchange.copiesOf(rank);
                SnapshotBuffer b = SnapshotRetention.beginCopy(store, total, jobId, epoch, rank, step,
                    told != null && told.job().jobId() == jobId ? exchange.committedStep() : -1, RECEIVE_SLOT_WAIT_NS);
                a = new Assembly(slot.sourceRank(), store, b, rank, step, epoch, jobId, count);
                assembling.put(rank, a);
            } else {
                a = assembling.get(keyRank);
                if (a == null || a.source != slot.sourceRank() || a.next != index || a.count != count
                    || a.buffer.lengthBytes() != total) {
                    giveUp(a == null ? null : assembling.remove(keyRank), "piece " + index + " of " + count
                        + " arrived from rank " + slot.sourceRank() + " out of order");
                    return;
                }
                a.next++;
            }
            try {
                a.buffer.write(off, slot.address(), slot.lengthBytes());
            } catch (RuntimeException e) {
                giveUp(assembling.remove(a.rank), e.getMessage());
                throw e;
            }
            if (index == count - 1) {
                assembling.remove(a.rank);
                a.store.completeAsReceived(a.buffer);
                exchange.arrived(a.epoch, a.jobId, a.rank, a.step);
            }
        } catch (RuntimeException e) {
            log.accept("snapshot copy from rank " + slot.sourceRank() + " not kept: " + e.getMessage());
        } finally {
            slot.release();
        }
    }

    /** Gives up a copy being reassembled: its slot goes back to the store unwritten. */
    private void giveUp(Assembly a, String why) {
        if (a != null) {
            a.store.abandon(a.buffer);
            log.accept("snapshot copy of rank " + a.rank + "'s step " + a.step + " from rank " + a.source
                + " given up: " + why);
        }
    }
}
