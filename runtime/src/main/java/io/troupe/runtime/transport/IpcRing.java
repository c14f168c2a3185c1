package io.troupe.runtime.transport;

import io.aeron.AeronCounters;
import java.io.File;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.util.function.LongPredicate;
import org.agrona.IoUtil;
import org.agrona.UnsafeApi;
import org.agrona.collections.LongHashSet;
import org.agrona.concurrent.UnsafeBuffer;
import org.agrona.concurrent.status.CountersReader;

/**
 * The bulk channel beside an IPC publication to a worker of another process on the same host: a
 * single-producer, single-consumer ring in a shared-memory file next to the media driver's files.
 * The sender copies a chunk into the ring and sends a header-only frame flagged
 * {@link TensorFrameDescriptor#FLAG_BY_RING} over its Aeron publication, carrying the chunk's ring
 * offset; the receiver reads (reduces, copies) the chunk straight from the ring and then advances the
 * ring's consumed position. Aeron keeps ordering, liveness and the frame's validation; the bulk bytes
 * skip the Aeron log, so the driver neither zeroes them behind the reader nor holds the sender to
 * its conductor-advanced window (on two cores that conductor was the collectives' bottleneck).
 *
 * <p>Positions are byte counts since creation. A chunk never wraps: when it does not fit before
 * the end of the data area the sender skips to offset 0, and the receiver recovers the chunk's
 * position from its offset ({@link #startOf}). The sender writes a chunk only into bytes the
 * receiver has released ({@code consumed >= min(start + length - capacity, written)}), so it never
 * overwrites what the receiver may still read. The frame's commit (an ordered write in the Aeron log) publishes
 * the chunk's bytes to the receiver; the receiver's ordered write of the consumed position hands
 * them back.
 *
 * <p>File: {@code <aeronDir>/troupe-ring-<pid>-<streamId>-<sessionId>}, named by the receiver's stream
 * and the publication's session, which are the image's too, so the receiver finds it without being
 * told. Layout: magic, version and capacity in the first line (all else zeroed), the consumed position
 * alone in the third, data from {@link #DATA_OFFSET}. The receiver trusts nothing in a frame: an
 * offset and length outside the data area are refused ({@link #holds}). The creator deletes the file
 * on close. A ring whose publication the driver no longer holds (its creator was killed) is swept
 * when another ring is created, once it is older than {@link #ORPHAN_MIN_AGE_MS}; the driver's
 * publication counters decide, not process ids, so processes in different PID namespaces (containers
 * sharing the driver's directory) keep each other's rings. The whole directory goes with the driver.
 *
 * <p>Threading: sender methods on the sender's thread, receiver methods on the receiver agent's.
 */
public final class IpcRing implements AutoCloseable {
    /** {@code "TRPR"} read as a little-endian int. */
    static final int MAGIC = 0x52505254;
    static final int VERSION = 1;
    static final String PREFIX = "troupe-ring-";
    private static final int MAGIC_OFFSET = 0;
    private static final int VERSION_OFFSET = 4;
    private static final int CAPACITY_OFFSET = 8;
    private static final int CONSUMED_OFFSET = 128;
    /** Where Aeron's stream counters (publisher limit among them) keep session and stream id in their key. */
    private static final int STREAM_COUNTER_SESSION_ID_OFFSET = 8;
    private static final int STREAM_COUNTER_STREAM_ID_OFFSET = 12;
    /** Start of the data area (page aligned). */
    static final int DATA_OFFSET = 4096;
    /** A ring is created just before its publication: younger rings are never taken for orphans. */
    static final long ORPHAN_MIN_AGE_MS = 30_000;

    private final File file;
    private final MappedByteBuffer mapped;
    private final UnsafeBuffer header;
    private final long data;
    private final int capacity;
    private final boolean creator;
    private long written;
    private long consumed;
    private boolean closed;

    private IpcRing(File file, MappedByteBuffer mapped, int capacity, boolean creator) {
        this.file = file;
        this.mapped = mapped;
        this.header = new UnsafeBuffer(mapped, 0, DATA_OFFSET);
        this.data = header.addressOffset() + DATA_OFFSET;
        this.capacity = capacity;
        this.creator = creator;
    }

    /** The file name of the ring for {@code streamId}/{@code sessionId} created by process {@code pid}. */
    static String fileName(long pid, int streamId, int sessionId) {
        return PREFIX + pid + suffix(streamId, sessionId);
    }

    private static String suffix(int streamId, int sessionId) {
        return "-" + Integer.toUnsignedString(streamId) + "-" + Integer.toUnsignedString(sessionId);
    }

    /** {@code streamId} and {@code sessionId} in one long, the form {@link #livePublications} tests. */
    static long pair(int streamId, int sessionId) {
        return ((long) streamId << 32) | (sessionId & 0xFFFF_FFFFL);
    }

    /**
     * The publications the driver behind {@code counters} holds now (a snapshot of its publisher-limit
     * counters), as a test on {@link #pair}: what decides whether a ring still has a sender.
     */
    public static LongPredicate livePublications(CountersReader counters) {
        LongHashSet live = new LongHashSet();
        counters.forEach((counterId, typeId, key, label) -> {
            if (typeId == AeronCounters.DRIVER_PUBLISHER_LIMIT_TYPE_ID) {
                live.add(pair(key.getInt(STREAM_COUNTER_STREAM_ID_OFFSET),
                    key.getInt(STREAM_COUNTER_SESSION_ID_OFFSET)));
            }
        });
        return live::contains;
    }

    /**
     * Sender: creates (replacing a leftover of the same name) and maps a ring of {@code capacity}
     * data bytes in {@code dir}, touching every page now so no page fault lands on the hot path.
     */
    public static IpcRing create(String dir, int streamId, int sessionId, int capacity) {
        return create(dir, streamId, sessionId, capacity, null);
    }

    /**
     * As {@link #create(String, int, int, int)}, first sweeping the rings of {@code dir} whose
     * publication {@code publicationLive} (see {@link #livePublications}) no longer knows.
     */
    public static IpcRing create(String dir, int streamId, int sessionId, int capacity, LongPredicate publicationLive) {
        if (capacity < 4096 || capacity % 64 != 0) {
            throw new IllegalArgumentException("ring capacity must be a multiple of 64, at least 4096: capacity="
                + capacity);
        }
        if (publicationLive != null) {
            sweepOrphans(new File(dir), publicationLive, System.currentTimeMillis() - ORPHAN_MIN_AGE_MS);
        }
        File f = new File(dir, fileName(ProcessHandle.current().pid(), streamId, sessionId));
        IoUtil.deleteIfExists(f);
        MappedByteBuffer mbb = IoUtil.mapNewFile(f, (long) DATA_OFFSET + capacity, false); // touched below
        IpcRing ring = new IpcRing(f, mbb, capacity, true);
        UnsafeApi.setMemory(ring.header.addressOffset(), DATA_OFFSET + (long) capacity, (byte) 0);
        ring.header.putInt(CAPACITY_OFFSET, capacity);
        ring.header.putInt(VERSION_OFFSET, VERSION);
        ring.header.putIntVolatile(MAGIC_OFFSET, MAGIC); // last: a reader that sees the magic sees the rest
        return ring;
    }

    /**
     * Receiver: maps the ring created in {@code dir} for {@code streamId}/{@code sessionId}, or returns
     * {@code null} when there is none or it is not a valid ring (the frames that name it are then
     * dropped). The caller holds an image of that publication, so its sender is alive, and its ring,
     * made just before the publication, is the newest of that name (a killed predecessor's may remain).
     */
    public static IpcRing open(String dir, int streamId, int sessionId) {
        String suffix = suffix(streamId, sessionId);
        File[] candidates = new File(dir).listFiles((d, name) -> name.startsWith(PREFIX) && name.endsWith(suffix));
        if (candidates == null) {
            return null;
        }
        File best = null;
        for (File c : candidates) {
            if (best == null || c.lastModified() > best.lastModified()) {
                best = c;
            }
        }
        return best == null ? null : map(best);
    }

    private static IpcRing map(File f) {
        long length = f.length();
        if (length < DATA_OFFSET + 4096L || length > DATA_OFFSET + (long) Integer.MAX_VALUE) {
            return null;
        }
        MappedByteBuffer mbb;
        try (RandomAccessFile raf = new RandomAccessFile(f, "rw"); FileChannel ch = raf.getChannel()) {
            mbb = ch.map(FileChannel.MapMode.READ_WRITE, 0, length);
        } catch (IOException e) {
            return null;
        }
        UnsafeBuffer h = new UnsafeBuffer(mbb, 0, DATA_OFFSET);
        int capacity = h.getInt(CAPACITY_OFFSET);
        if (h.getIntVolatile(MAGIC_OFFSET) != MAGIC || h.getInt(VERSION_OFFSET) != VERSION
            || capacity != length - DATA_OFFSET) {
            IoUtil.unmap(mbb);
            return null;
        }
        IpcRing ring = new IpcRing(f, mbb, capacity, false);
        ring.consumed = h.getLongVolatile(CONSUMED_OFFSET);
        for (long p = 0; p < capacity; p += 4096) {
            UnsafeApi.getByte(ring.data + p); // map every page now, not on the hot path
        }
        return ring;
    }

    /** {@link #pair} of a ring file's name, or -1 when the name is not a ring's. */
    static long pairOf(String name) {
        String[] f = name.substring(PREFIX.length()).split("-");
        try {
            return f.length == 3 ? pair(Integer.parseUnsignedInt(f[1]), Integer.parseUnsignedInt(f[2])) : -1;
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    /**
     * Deletes the ring files last modified before {@code olderThanMs} whose publication
     * {@code publicationLive} does not know (what a killed process leaves). Returns how many.
     */
    static int sweepOrphans(File dir, LongPredicate publicationLive, long olderThanMs) {
        File[] entries = dir.listFiles((d, name) -> name.startsWith(PREFIX));
        int deleted = 0;
        for (File f : entries == null ? new File[0] : entries) {
            long pair = pairOf(f.getName());
            if (pair != -1 && !publicationLive.test(pair) && f.lastModified() < olderThanMs && f.delete()) {
                deleted++;
            }
        }
        return deleted;
    }

    /** Data bytes; the largest chunk the ring takes. */
    public int capacity() {
        return capacity;
    }

    File file() {
        return file;
    }

    // ------------------------------------------------------------------ sender

    /**
     * The position where a chunk of {@code length} bytes goes (contiguous, maybe after skipping the
     * end of the area), or -1 while the receiver still holds too much of the ring.
     */
    long claim(int length) {
        long w = written;
        int offset = (int) (w % capacity);
        long start = offset + length > capacity ? w + (capacity - offset) : w;
        // the bytes of the previous lap under [start, start + length) must be released; after a skip
        // that range may reach past what was ever written, and then everything written must be
        long need = Math.min(start + length - capacity, w);
        return header.getLongVolatile(CONSUMED_OFFSET) >= need ? start : -1;
    }

    /** Native address of position {@code position} (sender) or of ring offset {@code position} (receiver). */
    long address(long position) {
        return data + position % capacity;
    }

    /** Ring offset of a position: what the frame carries. */
    int offsetOf(long position) {
        return (int) (position % capacity);
    }

    /** The chunk at {@code start} of {@code length} bytes has been announced; later chunks go after it. */
    void commit(long start, int length) {
        written = start + length;
    }

    // ------------------------------------------------------------------ receiver

    /** True when a chunk of {@code length} bytes at ring offset {@code offset} lies inside the data area. */
    boolean holds(int offset, int length) {
        return offset >= 0 && length > 0 && offset <= capacity - length;
    }

    /**
     * The position of the next chunk, which sits at ring offset {@code offset}: the first position at
     * or after what was consumed with that offset (the sender skips at most the end of the area).
     */
    long startOf(int offset) {
        long c = consumed;
        return c + Math.floorMod(offset - (int) (c % capacity), capacity);
    }

    /** The chunk ending at {@code end} (a position) has been used: the sender may reuse its bytes. */
    void consumedTo(long end) {
        if (end > consumed) {
            consumed = end;
            header.putLongOrdered(CONSUMED_OFFSET, end);
        }
    }

    /** The position released so far (receiver's view). */
    long consumed() {
        return consumed;
    }

    /** Unmaps; the creator also deletes the file (a receiver's mapping stays valid until it unmaps). Idempotent. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        IoUtil.unmap(mapped);
        if (creator) {
            IoUtil.deleteIfExists(file);
        }
    }
}
