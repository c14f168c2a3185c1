package io.troupe.actors.cluster.snapshot;

import com.sun.management.HotSpotDiagnosticMXBean;
import java.lang.management.BufferPoolMXBean;
import java.lang.management.ManagementFactory;

/**
 * This JVM's direct memory as the snapshot slots ({@link SnapshotBuffer}) see it, read through the
 * public management beans: the limit is HotSpot's {@code MaxDirectMemorySize} option (0, its default,
 * means the maximum heap, {@link Runtime#maxMemory()}), what is in use the {@code "direct"} buffer
 * pool's memory used (what the JDK counts against the limit).
 *
 * <p>Threading: any thread; every call reads the beans afresh.
 */
public final class DirectMemory {
    /** A limit or amount not known (a JVM without HotSpot's diagnostic bean): no check is made. */
    public static final long UNKNOWN = -1;
    /**
     * Direct memory left for the rest of a node when it offers the remainder to snapshot slots: Artery's
     * frame buffers (up to 32 MiB), the checkpoint readers' and writers' 4 MiB buffers, the data plane's headers.
     */
    public static final long RESERVE_BYTES = 64L << 20;
    /**
     * This JVM's name as a memory domain, random per JVM: the workers of every node this JVM runs (an embedded
     * cluster runs several) advertise it, and the coordinator counts all their snapshot slots against its one
     * direct-memory limit.
     */
    public static final String JVM = java.util.UUID.randomUUID().toString();

    private DirectMemory() {
    }

    /**
     * The JVM's direct-memory limit in bytes ({@code -XX:MaxDirectMemorySize}, else the maximum heap), or
     * {@link #UNKNOWN}.
     */
    public static long limitBytes() {
        try {
            HotSpotDiagnosticMXBean hotSpot = ManagementFactory.getPlatformMXBean(HotSpotDiagnosticMXBean.class);
            if (hotSpot == null) {
                return UNKNOWN;
            }
            long max = Long.parseLong(hotSpot.getVMOption("MaxDirectMemorySize").getValue());
            return max > 0 ? max : Runtime.getRuntime().maxMemory();
        } catch (IllegalArgumentException | UnsupportedOperationException e) {
            return UNKNOWN;               // no such option on this JVM, or not a number
        }
    }

    /** Direct-buffer bytes in use now (the {@code "direct"} buffer pool), or {@link #UNKNOWN}. */
    public static long usedBytes() {
        for (BufferPoolMXBean pool : ManagementFactory.getPlatformMXBeans(BufferPoolMXBean.class)) {
            if ("direct".equals(pool.getName())) {
                return pool.getMemoryUsed();
            }
        }
        return UNKNOWN;
    }

    /**
     * What snapshot slots may take from now on: the limit less what is in use and {@link #RESERVE_BYTES}
     * (at least 0), or {@link #UNKNOWN} when the limit or the use cannot be read.
     */
    public static long availableForSnapshotsBytes() {
        return availableBytes(limitBytes(), usedBytes());
    }

    /** {@link #availableForSnapshotsBytes()} for a given limit and use. */
    static long availableBytes(long limitBytes, long usedBytes) {
        if (limitBytes == UNKNOWN || usedBytes == UNKNOWN) {
            return UNKNOWN;
        }
        return Math.max(0, limitBytes - usedBytes - RESERVE_BYTES);
    }
}
