package io.troupe.actors.cluster.snapshot;

import static io.troupe.actors.cluster.snapshot.SnapshotDescriptor.BODY_LENGTH_OFFSET;
import static io.troupe.actors.cluster.snapshot.SnapshotDescriptor.CHUNKS_OFFSET;
import static io.troupe.actors.cluster.snapshot.SnapshotDescriptor.CRC_OFFSET;
import static io.troupe.actors.cluster.snapshot.SnapshotDescriptor.EPOCH_OFFSET;
import static io.troupe.actors.cluster.snapshot.SnapshotDescriptor.HEADER_LENGTH;
import static io.troupe.actors.cluster.snapshot.SnapshotDescriptor.JOB_ID_OFFSET;
import static io.troupe.actors.cluster.snapshot.SnapshotDescriptor.MAGIC;
import static io.troupe.actors.cluster.snapshot.SnapshotDescriptor.MAGIC_OFFSET;
import static io.troupe.actors.cluster.snapshot.SnapshotDescriptor.RANK_OFFSET;
import static io.troupe.actors.cluster.snapshot.SnapshotDescriptor.STEP_OFFSET;
import static io.troupe.actors.cluster.snapshot.SnapshotDescriptor.VERSION;
import static io.troupe.actors.cluster.snapshot.SnapshotDescriptor.VERSION_OFFSET;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.zip.CRC32C;
import org.agrona.concurrent.UnsafeBuffer;

/**
 * One slot of a {@link SnapshotStore}: off-heap memory holding one snapshot in the
 * {@link SnapshotDescriptor} layout, reused from snapshot to snapshot (grown when a larger one comes).
 *
 * <p>Threading: written by one thread at a time (the store hands it out); the store's lock orders
 * a completed write before any reader.
 */
public final class SnapshotBuffer {
    private ByteBuffer memory;
    private UnsafeBuffer view;
    private long lengthBytes;
    /** A whole, sealed snapshot (not being written). */
    boolean complete;
    /** Readers that must not see it overwritten (a send in flight). */
    int pins;
    /** Completion order in its store; the highest complete one is the latest. */
    long sequence;

    SnapshotBuffer() {
        ensureCapacity(HEADER_LENGTH);
    }

    /** Makes room for {@code bytes} (the content is lost when it grows) and sets the length. */
    void prepare(long bytes) {
        if (bytes < HEADER_LENGTH || bytes > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("snapshot length must be in [" + HEADER_LENGTH + ", " + (Integer.MAX_VALUE - 8)
                + "] bytes: lengthBytes=" + bytes);
        }
        ensureCapacity(bytes);
        lengthBytes = bytes;
    }

    private void ensureCapacity(long bytes) {
        if (memory == null || memory.capacity() < bytes) {
            memory = ByteBuffer.allocateDirect((int) bytes).order(ByteOrder.LITTLE_ENDIAN);
            view = new UnsafeBuffer(memory);
        }
    }

    /** The memory (little-endian); valid from 0 to {@link #lengthBytes()}. */
    public UnsafeBuffer view() {
        return view;
    }

    public long address() {
        return view.addressOffset();
    }

    public long lengthBytes() {
        return lengthBytes;
    }

    public long capacityBytes() {
        return memory.capacity();
    }

    /** Writes the header's version fields (the CRC and the body length come with {@link #seal}). */
    public void writeHeader(int jobId, int rank, long epoch, long step, int chunks) {
        UnsafeBuffer b = view;
        b.setMemory(0, HEADER_LENGTH, (byte) 0);
        b.putInt(MAGIC_OFFSET, MAGIC);
        b.putInt(VERSION_OFFSET, VERSION);
        b.putInt(JOB_ID_OFFSET, jobId);
        b.putInt(RANK_OFFSET, rank);
        b.putLong(EPOCH_OFFSET, epoch);
        b.putLong(STEP_OFFSET, step);
        b.putInt(CHUNKS_OFFSET, chunks);
    }

    /** Computes and stores the CRC32C of the body. */
    public void seal() {
        view.putLong(BODY_LENGTH_OFFSET, lengthBytes - HEADER_LENGTH);
        view.putInt(CRC_OFFSET, bodyCrc());
    }

    private int bodyCrc() {
        CRC32C crc = new CRC32C();
        ByteBuffer body = memory.duplicate();
        body.limit((int) lengthBytes).position(HEADER_LENGTH);
        crc.update(body);
        return (int) crc.getValue();
    }

    /** Copies {@code bytes} bytes from native {@code srcAddress} into this buffer (it must be prepared to hold them). */
    void copyFrom(long srcAddress, long bytes) {
        prepare(bytes);
        new UnsafeBuffer(srcAddress, (int) bytes).getBytes(0, view, 0, (int) bytes);
    }

    public int magic() {
        return view.getInt(MAGIC_OFFSET);
    }

    public int jobId() {
        return view.getInt(JOB_ID_OFFSET);
    }

    public int rank() {
        return view.getInt(RANK_OFFSET);
    }

    public long epoch() {
        return view.getLong(EPOCH_OFFSET);
    }

    public long step() {
        return view.getLong(STEP_OFFSET);
    }

    public int chunks() {
        return view.getInt(CHUNKS_OFFSET);
    }

    /**
     * Null when the buffer holds a whole snapshot of job {@code jobId}, rank {@code rank}, step
     * {@code step} whose CRC matches; otherwise why not.
     */
    public String check(int jobId, int rank, long step) {
        if (lengthBytes < HEADER_LENGTH || magic() != MAGIC) {
            return "no snapshot (bad magic " + Integer.toHexString(magic()) + ")";
        }
        if (view.getInt(VERSION_OFFSET) != VERSION) {
            return "snapshot format version " + view.getInt(VERSION_OFFSET) + ", expected " + VERSION;
        }
        if (jobId() != jobId || rank() != rank || step() != step) {
            return "holds " + describe() + ", wanted job " + Integer.toHexString(jobId) + " rank " + rank + " step " + step;
        }
        if (view.getLong(BODY_LENGTH_OFFSET) != lengthBytes - HEADER_LENGTH) {
            return "length " + view.getLong(BODY_LENGTH_OFFSET) + " in the header, " + (lengthBytes - HEADER_LENGTH) + " held";
        }
        int crc = bodyCrc();
        if (crc != view.getInt(CRC_OFFSET)) {
            return "CRC32C mismatch in " + describe() + ": header " + Integer.toHexString(view.getInt(CRC_OFFSET)) + ", body "
                + Integer.toHexString(crc);
        }
        return null;
    }

    /** Its version: job, epoch, step and rank. */
    public String describe() {
        return "snapshot of job " + Integer.toHexString(jobId()) + " epoch " + epoch() + " step " + step() + " rank " + rank();
    }
}
