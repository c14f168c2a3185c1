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

import io.troupe.runtime.device.Device;
import io.troupe.runtime.device.DeviceKind;
import io.troupe.runtime.tensor.Tensor;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.zip.CRC32C;
import org.agrona.UnsafeApi;
import org.agrona.concurrent.UnsafeBuffer;

/**
 * One slot of a {@link SnapshotStore}: off-heap memory holding one snapshot in the
 * {@link SnapshotDescriptor} layout, reused from snapshot to snapshot (grown when a larger one comes).
 * The memory is a row of direct buffers of 1 GiB each (the last one shorter), so a snapshot may pass
 * the 2 GiB a single buffer can hold; every access goes through an offset in the whole snapshot.
 *
 * <p>Threading: written by one thread at a time (the store hands it out); the store's lock orders
 * a completed write before any reader.
 */
public final class SnapshotBuffer {
    /** log2 of a segment's size: 1 GiB. */
    static final int SEGMENT_SHIFT = 30;
    /** The longest snapshot a slot holds: 1 TiB. */
    static final long MAX_LENGTH_BYTES = 1L << 40;

    private final int segmentShift;
    private final long segmentMask;
    private ByteBuffer[] memory = new ByteBuffer[0];
    private UnsafeBuffer[] views = new UnsafeBuffer[0];
    private long capacityBytes;
    private long lengthBytes;
    /** A whole, sealed snapshot (not being written). */
    boolean complete;
    /** Readers that must not see it overwritten (a send in flight). */
    int pins;
    /** Completion order in its store; the highest complete one is the latest. */
    long sequence;

    SnapshotBuffer() {
        this(SEGMENT_SHIFT);
    }

    /** A slot whose segments are {@code 2^segmentShift} bytes (smaller than 1 GiB only to test the seams). */
    SnapshotBuffer(int segmentShift) {
        if (segmentShift < 12 || segmentShift > SEGMENT_SHIFT) {
            throw new IllegalArgumentException("segments of 2^12 to 2^" + SEGMENT_SHIFT + " bytes: segmentShift="
                + segmentShift);
        }
        this.segmentShift = segmentShift;
        this.segmentMask = (1L << segmentShift) - 1;
        ensureCapacity(HEADER_LENGTH);
    }

    /** Makes room for {@code bytes} (the content is lost when it grows) and sets the length. */
    void prepare(long bytes) {
        if (bytes < HEADER_LENGTH || bytes > MAX_LENGTH_BYTES) {
            throw new IllegalArgumentException("snapshot length must be in [" + HEADER_LENGTH + ", " + MAX_LENGTH_BYTES
                + "] bytes: lengthBytes=" + bytes);
        }
        ensureCapacity(bytes);
        lengthBytes = bytes;
    }

    private void ensureCapacity(long bytes) {
        if (capacityBytes >= bytes) {
            return;
        }
        int n = (int) ((bytes + segmentMask) >>> segmentShift);
        ByteBuffer[] m = new ByteBuffer[n];
        UnsafeBuffer[] v = new UnsafeBuffer[n];
        long capacity = 0;
        for (int i = 0; i < n; i++) {
            long size = Math.min(1L << segmentShift, bytes - ((long) i << segmentShift));
            if (i < memory.length && memory[i].capacity() >= size) {
                m[i] = memory[i];
                v[i] = views[i];
            } else {
                try {
                    m[i] = ByteBuffer.allocateDirect((int) size).order(ByteOrder.LITTLE_ENDIAN);
                } catch (OutOfMemoryError e) {
                    throw new SnapshotException("no direct memory for a snapshot slot of " + bytes
                        + " bytes (the JVM's "
                        + "-XX:MaxDirectMemorySize, by default its maximum heap, holds every slot; raise it or turn "
                        + "troupe.recovery.snapshots off): " + e.getMessage());
                }
                v[i] = new UnsafeBuffer(m[i]);
            }
            capacity += m[i].capacity();
        }
        memory = m;
        views = v;
        capacityBytes = capacity;
    }

    /** The segment view holding offset {@code at}, checking that {@code bytes} from there stay in it. */
    private UnsafeBuffer segment(long at, long bytes) {
        if (at < 0 || bytes < 0 || at + bytes > capacityBytes || (at & segmentMask) + bytes > 1L << segmentShift) {
            throw new IndexOutOfBoundsException("snapshot bytes [" + at + ", " + (at + bytes)
                + ") are not in one segment of " + capacityBytes + " bytes held (segments of 2^" + segmentShift + ")");
        }
        return views[(int) (at >>> segmentShift)];
    }

    public long lengthBytes() {
        return lengthBytes;
    }

    public long capacityBytes() {
        return capacityBytes;
    }

    /** The longest run of bytes from an offset a multiple of it that stays in one segment: log2 of a segment's size. */
    public int segmentShift() {
        return segmentShift;
    }

    /** Native address of offset {@code at}, whose {@code bytes} bytes must lie in one segment (a piece being sent). */
    public long address(long at, long bytes) {
        return segment(at, bytes).addressOffset() + (at & segmentMask);
    }

    /** Copies {@code bytes} bytes from native {@code srcAddress} to offset {@code at}, across segments. */
    public void write(long at, long srcAddress, long bytes) {
        copy(at, srcAddress, bytes, true);
    }

    /** Copies {@code bytes} bytes from offset {@code at} to native {@code dstAddress}, across segments. */
    public void read(long at, long dstAddress, long bytes) {
        copy(at, dstAddress, bytes, false);
    }

    /**
     * Copies device tensor {@code src} to offset {@code at} with the device's own copy
     * ({@link Device#copyToHost(Tensor, Tensor)}) straight into this slot's memory, no host copy between:
     * one copy per segment the bytes fall in, each into a {@link SlotWindow} over exactly that segment's
     * part, reported as a tensor of {@code host} (a CPU device: only its name is asked), closed as soon as
     * the copy returns.
     */
    public void download(long at, Tensor src, Device host) {
        copyDevice(at, src, host, true);
    }

    /**
     * Copies the bytes at offset {@code at} straight into device tensor {@code dst}, as {@link #download} the other
     * way.
     */
    public void upload(long at, Tensor dst, Device host) {
        copyDevice(at, dst, host, false);
    }

    /** Copies between offset {@code at} and device tensor {@code t}, one segment's part at a time. */
    private void copyDevice(long at, Tensor t, Device host, boolean intoSlot) {
        long bytes = t.lengthBytes();
        int elementBytes = t.dtype().sizeBytes();
        if (at < 0 || at + bytes > capacityBytes) {
            throw new IndexOutOfBoundsException("snapshot bytes [" + at + ", " + (at + bytes) + ") outside the "
                + capacityBytes + " bytes held");
        }
        if (at % elementBytes != 0) {
            throw new IllegalArgumentException("snapshot offset " + at + " is not aligned for " + t.dtype()
                + " elements");
        }
        if (host.kind() != DeviceKind.CPU) {
            throw new IllegalArgumentException("slot memory is host memory: host=" + host.name());
        }
        for (long done = 0; done < bytes;) {
            long pos = at + done;
            // A whole number of elements: at is aligned, and a segment (2^12 bytes or more) holds whole elements.
            long n = Math.min(bytes - done, (1L << segmentShift) - (pos & segmentMask));
            int elements = (int) (n / elementBytes);
            Tensor part = t.view(done / elementBytes, elements);
            long address = address(pos, n);
            if (address % elementBytes != 0) {
                throw new IllegalStateException("snapshot slot memory at " + pos + " is not aligned for " + t.dtype()
                    + " elements: address " + address);
            }
            try (SlotWindow w = new SlotWindow(address, n)) {
                Tensor window = new Tensor(host, w, t.dtype(), 0, new int[] {elements}, false);
                if (intoSlot) {
                    t.device().copyToHost(part, window);
                } else {
                    t.device().copyFromHost(window, part);
                }
            }
            done += n;
        }
    }

    /** Copies between offset {@code at} and native {@code address}, one segment's part at a time. */
    private void copy(long at, long address, long bytes, boolean intoSlot) {
        if (at < 0 || bytes < 0 || at + bytes > capacityBytes) {
            throw new IndexOutOfBoundsException("snapshot bytes [" + at + ", " + (at + bytes) + ") outside the "
                + capacityBytes + " bytes held");
        }
        for (long done = 0; done < bytes;) {
            long pos = at + done;
            long n = Math.min(bytes - done, (1L << segmentShift) - (pos & segmentMask));
            long slot = views[(int) (pos >>> segmentShift)].addressOffset() + (pos & segmentMask);
            if (intoSlot) {
                UnsafeApi.copyMemory(address + done, slot, n);
            } else {
                UnsafeApi.copyMemory(slot, address + done, n);
            }
            done += n;
        }
    }

    public long getLong(long at) {
        return segment(at, Long.BYTES).getLong((int) (at & segmentMask));
    }

    public void putLong(long at, long value) {
        segment(at, Long.BYTES).putLong((int) (at & segmentMask), value);
    }

    public int getInt(long at) {
        return segment(at, Integer.BYTES).getInt((int) (at & segmentMask));
    }

    public void putInt(long at, int value) {
        segment(at, Integer.BYTES).putInt((int) (at & segmentMask), value);
    }

    public byte getByte(long at) {
        return segment(at, 1).getByte((int) (at & segmentMask));
    }

    public void putByte(long at, byte value) {
        segment(at, 1).putByte((int) (at & segmentMask), value);
    }

    /** Writes the header's version fields (the CRC and the body length come with {@link #seal}). */
    public void writeHeader(int jobId, int rank, long epoch, long step, int chunks) {
        UnsafeBuffer b = views[0];
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
        views[0].putLong(BODY_LENGTH_OFFSET, lengthBytes - HEADER_LENGTH);
        views[0].putInt(CRC_OFFSET, bodyCrc());
    }

    /** The CRC32C of the bytes after the header, segment by segment (no copy). */
    private int bodyCrc() {
        CRC32C crc = new CRC32C();
        for (int i = 0; i < memory.length; i++) {
            long start = (long) i << segmentShift;
            long from = Math.max(HEADER_LENGTH, start);
            long to = Math.min(lengthBytes, start + memory[i].capacity());
            if (from < to) {
                ByteBuffer part = memory[i].duplicate();
                part.limit((int) (to - start)).position((int) (from - start));
                crc.update(part);
            }
        }
        return (int) crc.getValue();
    }

    public int magic() {
        return views[0].getInt(MAGIC_OFFSET);
    }

    public int jobId() {
        return views[0].getInt(JOB_ID_OFFSET);
    }

    public int rank() {
        return views[0].getInt(RANK_OFFSET);
    }

    public long epoch() {
        return views[0].getLong(EPOCH_OFFSET);
    }

    public long step() {
        return views[0].getLong(STEP_OFFSET);
    }

    public int chunks() {
        return views[0].getInt(CHUNKS_OFFSET);
    }

    /**
     * Null when the buffer holds a whole snapshot of job {@code jobId}, rank {@code rank}, step
     * {@code step} whose CRC matches; otherwise why not.
     */
    public String check(int jobId, int rank, long step) {
        if (lengthBytes < HEADER_LENGTH || magic() != MAGIC) {
            return "no snapshot (bad magic " + Integer.toHexString(magic()) + ")";
        }
        if (views[0].getInt(VERSION_OFFSET) != VERSION) {
            return "snapshot format version " + views[0].getInt(VERSION_OFFSET) + ", expected " + VERSION;
        }
        if (jobId() != jobId || rank() != rank || step() != step) {
            return "holds " + describe() + ", wanted job " + Integer.toHexString(jobId) + " rank " + rank + " step "
                + step;
        }
        if (views[0].getLong(BODY_LENGTH_OFFSET) != lengthBytes - HEADER_LENGTH) {
            return "length " + views[0].getLong(BODY_LENGTH_OFFSET) + " in the header, " + (lengthBytes - HEADER_LENGTH)
                + " held";
        }
        int crc = bodyCrc();
        if (crc != views[0].getInt(CRC_OFFSET)) {
            return "CRC32C mismatch in " + describe() + ": header " + Integer.toHexString(views[0].getInt(CRC_OFFSET))
                + ", body " + Integer.toHexString(crc);
        }
        return null;
    }

    /** Its version: job, epoch, step and rank. */
    public String describe() {
        return "snapshot of job " + Integer.toHexString(jobId()) + " epoch " + epoch() + " step " + step() + " rank "
            + rank();
    }
}
