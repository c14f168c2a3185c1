package io.troupe.runtime.transport;

import io.aeron.driver.ThreadingMode;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * Immutable, validated settings of the Aeron data plane of one node. Built once (from HOCON by the
 * control plane, or with {@link #defaults()} and the {@code withXxx} methods) and passed to
 * {@link TransportNode#launch}.
 *
 * @param aeronDir               the media driver directory; {@code null} picks a unique directory
 *                               under {@code /dev/shm} (or the temp dir) for an embedded driver. A
 *                               stale directory left by a crashed driver is deleted on start.
 * @param externalDriver         true: connect to an already running driver in {@code aeronDir}
 *                               instead of embedding one
 * @param threadingMode          embedded driver threading; {@code SHARED} (one thread, backoff idle)
 *                               by default because machines may have only 2 cores
 * @param termLengthBytes        term buffer length of every publication (power of two); the largest
 *                               message Aeron takes is {@code termLengthBytes / 8}
 * @param mtuBytes               UDP MTU to other hosts (multiple of 32, at most 65504); {@link #DEFAULT_MTU_BYTES}
 *                               fits a 1500-byte Ethernet frame, so datagrams are never IP-fragmented; a
 *                               jumbo-frame network may take 8 KiB or more
 * @param ipcMtuBytes            MTU of IPC publications (multiple of 32, at most 65504)
 * @param chunkBytes             the largest tensor chunk per Aeron message; plus the frame header it
 *                               must fit under {@code termLengthBytes / 8}
 * @param socketBufferBytes      UDP socket send/receive buffer and receiver window
 * @param receiveBudgetBytes     the most memory a receiver holds in reassembly slots; senders are
 *                               back-pressured beyond it
 * @param receiveSlotsMax        the most slots (tensors in reassembly or awaiting release) per receiver
 * @param connectTimeoutNs       how long a send waits for a not-yet-connected peer
 * @param backPressureTimeoutNs  how long a send retries while back-pressured without progress
 * @param peerLostTimeoutNs      a silent UDP peer is reported lost within this time (at least 500 ms)
 * @param crcEnabled             compute and verify CRC32C of frame headers and chunks on UDP (the wire)
 * @param localCopyMinBytes      tensors at least this large travel between workers of the same JVM by
 *                               one direct copy into the receiver's slot ({@link LocalCopyLink}); such a
 *                               send completes when the receiver has copied it. {@code Long.MAX_VALUE}
 *                               turns it off: such a peer is then served as one in another process
 *                               (through the {@link IpcRing} from {@code ipcRingMinBytes}, else the log)
 * @param udpBindHost            the address receivers bind to for remote peers (e.g. 127.0.0.1)
 * @param udpPort                the UDP port receivers bind to; 0 picks a free port
 * @param ipcCrcEnabled          compute and verify CRC32C on same-node IPC too (default off). Safe to
 *                               leave off: an IPC frame never leaves the node's memory. The sender
 *                               writes it into a shared-memory log that the receiver maps, with no
 *                               wire, NIC, kernel buffer or checksum-offload on the way, so the
 *                               failures CRC exists for (bit errors and truncation in transit) cannot
 *                               happen; a memory fault is ECC's business and corrupts the sender's
 *                               tensor as much as the log. Headers are still validated field by field
 *                               (magic, version, lengths, shape, epoch, ranks), so a bug that writes
 *                               garbage is still dropped and counted. On: fuzzing IPC, debugging.
 * @param receiverWindowBytes    UDP receiver window (flow control: how far a sender may run ahead of
 *                               what the receiver took), at most {@code socketBufferBytes} (Aeron
 *                               refuses a window above SO_RCVBUF) and {@code termLengthBytes / 2};
 *                               0 = the largest allowed, {@code min(socketBufferBytes, termLengthBytes / 2)}
 * @param loopbackMtuBytes       UDP MTU to peers on a loopback address (127.0.0.0/8, ::1, localhost):
 *                               the loopback device takes 64 KiB datagrams without fragmenting them,
 *                               and fewer, larger datagrams halve the driver's per-byte cost there
 *                               (default 65472, the largest multiple of 64 under Aeron's 65504)
 * @param ipcRingMinBytes        tensors at least this large travel to a worker of another process on
 *                               the same host (IPC) through the publication's shared-memory
 *                               {@link IpcRing} of {@code termLengthBytes / 2} bytes, the frame in the
 *                               Aeron log carrying only the header: the driver then neither zeroes the
 *                               bulk bytes nor paces the sender by its conductor. {@code Long.MAX_VALUE}
 *                               keeps every tensor on the Aeron log (default 64 KiB)
 * @param udpLossRate            chaos testing (DESIGN.md section 9): the share of UDP data frames the
 *                               embedded driver drops at random on receipt, before Aeron sees them
 *                               (Aeron's loss generator, seeded by the driver directory's name); its
 *                               NAKs and retransmits must repair every loss. In [0, 1); 0 (default) is off
 * @param authKey                the key that authenticates every UDP frame ({@link FrameMac}), or {@code null}
 *                               (default): with a key, senders tag their UDP frames and receivers refuse UDP
 *                               frames with no tag ({@link DropReason#MISSING_MAC}) or a wrong one
 *                               ({@link DropReason#BAD_MAC}); the tag replaces CRC32C there. IPC frames never
 *                               leave the host and carry none. Printing the settings never shows the key
 * @param udpCorruptNth          chaos testing: the n-th UDP data frame this node's embedded driver receives
 *                               gets one byte of its payload flipped, once, before Aeron sees it (the frame's
 *                               CRC32C or MAC must refuse it and the tensor it belongs to fail at once);
 *                               0 (default) is off
 */
public record TransportSettings(
    String aeronDir,
    boolean externalDriver,
    ThreadingMode threadingMode,
    int termLengthBytes,
    int mtuBytes,
    int ipcMtuBytes,
    int chunkBytes,
    int socketBufferBytes,
    long receiveBudgetBytes,
    int receiveSlotsMax,
    long connectTimeoutNs,
    long backPressureTimeoutNs,
    long peerLostTimeoutNs,
    boolean crcEnabled,
    long localCopyMinBytes,
    String udpBindHost,
    int udpPort,
    boolean ipcCrcEnabled,
    int receiverWindowBytes,
    int loopbackMtuBytes,
    long ipcRingMinBytes,
    double udpLossRate,
    FrameAuthKey authKey,
    long udpCorruptNth) {

    /** Aeron's largest UDP payload, the upper bound of an MTU. */
    public static final int MAX_MTU_BYTES = 65504;
    /** Smallest accepted MTU. */
    public static final int MIN_MTU_BYTES = 1024;
    /**
     * The default UDP MTU to other hosts: a 1500-byte Ethernet frame less its IP and UDP headers, rounded down to a
     * multiple of 32 (Aeron's own default). Many networks drop IP fragments (cloud networks, Kubernetes overlays), so
     * a larger default would leave peers on an ordinary network unable to exchange a tensor.
     */
    public static final int DEFAULT_MTU_BYTES = 1408;
    /** Smallest accepted term length (Aeron's minimum). */
    public static final int MIN_TERM_LENGTH_BYTES = 64 * 1024;
    /** Default UDP MTU to loopback peers: the largest multiple of 64 under {@link #MAX_MTU_BYTES}. */
    public static final int DEFAULT_LOOPBACK_MTU_BYTES = MAX_MTU_BYTES - MAX_MTU_BYTES % 64;
    /** Default {@code ipcRingMinBytes}: below it a chunk costs little in the log and is fastest there. */
    public static final long DEFAULT_IPC_RING_MIN_BYTES = 64 * 1024;
    /** Largest accepted term length (Aeron's maximum). */
    public static final int MAX_TERM_LENGTH_BYTES = 1024 * 1024 * 1024;

    public TransportSettings {
        if (externalDriver && (aeronDir == null || aeronDir.isBlank())) {
            throw new IllegalArgumentException("externalDriver needs aeronDir: aeronDir=" + aeronDir);
        }
        if (threadingMode == null) {
            throw new IllegalArgumentException("threadingMode must be set: threadingMode=null");
        }
        if (termLengthBytes < MIN_TERM_LENGTH_BYTES || termLengthBytes > MAX_TERM_LENGTH_BYTES
            || Integer.bitCount(termLengthBytes) != 1) {
            throw new IllegalArgumentException("termLengthBytes must be a power of two in [" + MIN_TERM_LENGTH_BYTES
                + ", " + MAX_TERM_LENGTH_BYTES + "]: termLengthBytes=" + termLengthBytes);
        }
        checkMtu("mtuBytes", mtuBytes);
        checkMtu("ipcMtuBytes", ipcMtuBytes);
        checkMtu("loopbackMtuBytes", loopbackMtuBytes);
        if (chunkBytes < 64 || chunkBytes % 64 != 0) {
            throw new IllegalArgumentException("chunkBytes must be a positive multiple of 64: chunkBytes="
                + chunkBytes);
        }
        int maxMessageBytes = Math.min(termLengthBytes / 8, 16 * 1024 * 1024);
        if (chunkBytes + TensorFrameDescriptor.HEADER_LENGTH > maxMessageBytes) {
            throw new IllegalArgumentException("chunkBytes plus the " + TensorFrameDescriptor.HEADER_LENGTH
                + "-byte frame header must fit Aeron's max message (termLengthBytes/8): chunkBytes=" + chunkBytes
                + ", termLengthBytes=" + termLengthBytes + ", maxMessageBytes=" + maxMessageBytes);
        }
        if (socketBufferBytes < 64 * 1024) {
            throw new IllegalArgumentException("socketBufferBytes must be at least 65536: socketBufferBytes="
                + socketBufferBytes);
        }
        if (receiveBudgetBytes < chunkBytes) {
            throw new IllegalArgumentException("receiveBudgetBytes must hold at least one chunk: receiveBudgetBytes="
                + receiveBudgetBytes + ", chunkBytes=" + chunkBytes);
        }
        if (receiveSlotsMax < 1 || receiveSlotsMax > 1 << 16) {
            throw new IllegalArgumentException("receiveSlotsMax must be in [1, 65536]: receiveSlotsMax="
                + receiveSlotsMax);
        }
        checkPositive("connectTimeoutNs", connectTimeoutNs);
        checkPositive("backPressureTimeoutNs", backPressureTimeoutNs);
        if (peerLostTimeoutNs < TimeUnit.MILLISECONDS.toNanos(500)) {
            throw new IllegalArgumentException("peerLostTimeoutNs must be at least 500 ms: peerLostTimeoutNs="
                + peerLostTimeoutNs);
        }
        if (localCopyMinBytes < 1) {
            throw new IllegalArgumentException("localCopyMinBytes must be positive: localCopyMinBytes="
                + localCopyMinBytes);
        }
        if (ipcRingMinBytes < 1) {
            throw new IllegalArgumentException("ipcRingMinBytes must be positive: ipcRingMinBytes=" + ipcRingMinBytes);
        }
        if (udpBindHost == null || udpBindHost.isBlank()) {
            throw new IllegalArgumentException("udpBindHost must be set: udpBindHost=" + udpBindHost);
        }
        if (udpPort < 0 || udpPort > 65535) {
            throw new IllegalArgumentException("udpPort must be in [0, 65535]: udpPort=" + udpPort);
        }
        if (!(udpLossRate >= 0 && udpLossRate < 1)) {
            throw new IllegalArgumentException("udpLossRate must be in [0, 1): udpLossRate=" + udpLossRate);
        }
        if (udpCorruptNth < 0) {
            throw new IllegalArgumentException("udpCorruptNth must be >= 0 (0: off): udpCorruptNth=" + udpCorruptNth);
        }
        if (receiverWindowBytes != 0 && (receiverWindowBytes < Math.max(mtuBytes, loopbackMtuBytes)
            || receiverWindowBytes > Math.min(socketBufferBytes, termLengthBytes / 2))) {
            throw new IllegalArgumentException(
                "receiverWindowBytes must be 0 (auto) or in [max(mtuBytes, loopbackMtuBytes), min(socketBufferBytes,"
                + " termLengthBytes / 2)]: receiverWindowBytes=" + receiverWindowBytes + ", mtuBytes=" + mtuBytes
                + ", socketBufferBytes=" + socketBufferBytes + ", termLengthBytes=" + termLengthBytes);
        }
    }

    /**
     * The settings of the first 17 components with CRC off on IPC, the automatic UDP receiver window
     * and the default loopback MTU (source compatibility for readers of the earlier record).
     */
    public TransportSettings(String aeronDir, boolean externalDriver, ThreadingMode threadingMode, int termLengthBytes,
                             int mtuBytes, int ipcMtuBytes, int chunkBytes, int socketBufferBytes,
                             long receiveBudgetBytes, int receiveSlotsMax, long connectTimeoutNs,
                             long backPressureTimeoutNs, long peerLostTimeoutNs, boolean crcEnabled,
                             long localCopyMinBytes, String udpBindHost, int udpPort) {
        this(aeronDir, externalDriver, threadingMode, termLengthBytes, mtuBytes, ipcMtuBytes, chunkBytes,
            socketBufferBytes, receiveBudgetBytes, receiveSlotsMax, connectTimeoutNs, backPressureTimeoutNs,
            peerLostTimeoutNs, crcEnabled, localCopyMinBytes, udpBindHost, udpPort, false, 0,
                DEFAULT_LOOPBACK_MTU_BYTES);
    }

    /**
     * The settings of the first 20 components with the default {@code ipcRingMinBytes} (readers of the earlier record).
     */
    public TransportSettings(String aeronDir, boolean externalDriver, ThreadingMode threadingMode, int termLengthBytes,
                             int mtuBytes, int ipcMtuBytes, int chunkBytes, int socketBufferBytes,
                             long receiveBudgetBytes, int receiveSlotsMax, long connectTimeoutNs,
                             long backPressureTimeoutNs, long peerLostTimeoutNs, boolean crcEnabled,
                             long localCopyMinBytes, String udpBindHost, int udpPort, boolean ipcCrcEnabled,
                             int receiverWindowBytes, int loopbackMtuBytes) {
        this(aeronDir, externalDriver, threadingMode, termLengthBytes, mtuBytes, ipcMtuBytes, chunkBytes,
            socketBufferBytes, receiveBudgetBytes, receiveSlotsMax, connectTimeoutNs, backPressureTimeoutNs,
            peerLostTimeoutNs, crcEnabled, localCopyMinBytes, udpBindHost, udpPort, ipcCrcEnabled, receiverWindowBytes,
            loopbackMtuBytes, DEFAULT_IPC_RING_MIN_BYTES);
    }

    /** The settings of the first 21 components with no UDP loss injected (readers of the earlier record). */
    public TransportSettings(String aeronDir, boolean externalDriver, ThreadingMode threadingMode, int termLengthBytes,
                             int mtuBytes, int ipcMtuBytes, int chunkBytes, int socketBufferBytes,
                             long receiveBudgetBytes, int receiveSlotsMax, long connectTimeoutNs,
                             long backPressureTimeoutNs, long peerLostTimeoutNs, boolean crcEnabled,
                             long localCopyMinBytes, String udpBindHost, int udpPort, boolean ipcCrcEnabled,
                             int receiverWindowBytes, int loopbackMtuBytes, long ipcRingMinBytes) {
        this(aeronDir, externalDriver, threadingMode, termLengthBytes, mtuBytes, ipcMtuBytes, chunkBytes,
            socketBufferBytes, receiveBudgetBytes, receiveSlotsMax, connectTimeoutNs, backPressureTimeoutNs,
            peerLostTimeoutNs, crcEnabled, localCopyMinBytes, udpBindHost, udpPort, ipcCrcEnabled, receiverWindowBytes,
            loopbackMtuBytes, ipcRingMinBytes, 0.0, null, 0);
    }

    /** The settings of the first 22 components with no auth key (readers of the earlier record). */
    public TransportSettings(String aeronDir, boolean externalDriver, ThreadingMode threadingMode, int termLengthBytes,
                             int mtuBytes, int ipcMtuBytes, int chunkBytes, int socketBufferBytes,
                             long receiveBudgetBytes, int receiveSlotsMax, long connectTimeoutNs,
                             long backPressureTimeoutNs, long peerLostTimeoutNs, boolean crcEnabled,
                             long localCopyMinBytes, String udpBindHost, int udpPort, boolean ipcCrcEnabled,
                             int receiverWindowBytes, int loopbackMtuBytes, long ipcRingMinBytes, double udpLossRate) {
        this(aeronDir, externalDriver, threadingMode, termLengthBytes, mtuBytes, ipcMtuBytes, chunkBytes,
            socketBufferBytes, receiveBudgetBytes, receiveSlotsMax, connectTimeoutNs, backPressureTimeoutNs,
            peerLostTimeoutNs, crcEnabled, localCopyMinBytes, udpBindHost, udpPort, ipcCrcEnabled, receiverWindowBytes,
            loopbackMtuBytes, ipcRingMinBytes, udpLossRate, null);
    }

    /** The settings of the first 23 components with no frame corrupted (readers of the earlier record). */
    public TransportSettings(String aeronDir, boolean externalDriver, ThreadingMode threadingMode, int termLengthBytes,
                             int mtuBytes, int ipcMtuBytes, int chunkBytes, int socketBufferBytes,
                             long receiveBudgetBytes, int receiveSlotsMax, long connectTimeoutNs,
                             long backPressureTimeoutNs, long peerLostTimeoutNs, boolean crcEnabled,
                             long localCopyMinBytes, String udpBindHost, int udpPort, boolean ipcCrcEnabled,
                             int receiverWindowBytes, int loopbackMtuBytes, long ipcRingMinBytes, double udpLossRate,
                             FrameAuthKey authKey) {
        this(aeronDir, externalDriver, threadingMode, termLengthBytes, mtuBytes, ipcMtuBytes, chunkBytes,
            socketBufferBytes, receiveBudgetBytes, receiveSlotsMax, connectTimeoutNs, backPressureTimeoutNs,
            peerLostTimeoutNs, crcEnabled, localCopyMinBytes, udpBindHost, udpPort, ipcCrcEnabled, receiverWindowBytes,
            loopbackMtuBytes, ipcRingMinBytes, udpLossRate, authKey, 0);
    }

    /** The key frames on this kind of channel are tagged and checked with: {@code null} on IPC or without a key. */
    public FrameAuthKey authKeyFor(boolean ipc) {
        return ipc ? null : authKey;
    }

    /**
     * The UDP MTU for a peer at {@code host}: {@code loopbackMtuBytes} on a loopback address, else {@code mtuBytes}.
     */
    public int udpMtuBytesFor(String host) {
        return isLoopback(host) ? loopbackMtuBytes : mtuBytes;
    }

    /** True for a literal loopback address (127.0.0.0/8, ::1) or {@code localhost}; no name lookup. */
    public static boolean isLoopback(String host) {
        String h = host.startsWith("[") && host.endsWith("]") ? host.substring(1, host.length() - 1) : host;
        return h.startsWith("127.") || h.equals("::1") || h.equals("0:0:0:0:0:0:0:1")
            || h.equalsIgnoreCase("localhost");
    }

    /** The UDP receiver window in use: {@code receiverWindowBytes}, or the largest allowed when 0. */
    public int effectiveReceiverWindowBytes() {
        return receiverWindowBytes != 0 ? receiverWindowBytes : Math.min(socketBufferBytes, termLengthBytes / 2);
    }

    /** Whether frames on this kind of channel carry (and must carry) CRC32C. */
    public boolean crcEnabledFor(boolean ipc) {
        return ipc ? ipcCrcEnabled : crcEnabled;
    }

    private static void checkMtu(String name, int mtu) {
        if (mtu < MIN_MTU_BYTES || mtu > MAX_MTU_BYTES || mtu % 32 != 0) {
            throw new IllegalArgumentException(name + " must be a multiple of 32 in [" + MIN_MTU_BYTES + ", "
                + MAX_MTU_BYTES + "]: " + name + "=" + mtu);
        }
    }

    private static void checkPositive(String name, long value) {
        if (value <= 0) {
            throw new IllegalArgumentException(name + " must be positive: " + name + "=" + value);
        }
    }

    /**
     * Defaults: embedded SHARED driver, 16 MiB terms, 1 MiB chunks, a 1408-byte UDP MTU to other hosts (a datagram
     * fits a 1500-byte Ethernet frame) and 65472 to loopback peers, 64 KiB IPC MTU, 4 MiB socket buffers and
     * receiver window, 256 MiB receive budget, 1024 slots, connect 10 s, back-pressure 10 s, peer lost 5 s, CRC on
     * UDP and off on IPC, same-JVM direct copy from 1 MiB, UDP on 127.0.0.1 with a free port, no UDP loss injected.
     */
    public static TransportSettings defaults() {
        return new TransportSettings(null, false, ThreadingMode.SHARED, 16 * 1024 * 1024, DEFAULT_MTU_BYTES,
            65504 - 65504 % 64,
            1024 * 1024, 4 * 1024 * 1024, 256L * 1024 * 1024, 1024, TimeUnit.SECONDS.toNanos(10),
            TimeUnit.SECONDS.toNanos(10), TimeUnit.SECONDS.toNanos(5), true, 1024 * 1024, "127.0.0.1", 0, false, 0,
            DEFAULT_LOOPBACK_MTU_BYTES, DEFAULT_IPC_RING_MIN_BYTES, 0.0, null);
    }

    /** The largest Aeron message for this term length. */
    public int maxMessageBytes() {
        return Math.min(termLengthBytes / 8, 16 * 1024 * 1024);
    }

    public TransportSettings withAeronDir(String dir) {
        return edit(d -> d.aeronDir = dir);
    }

    public TransportSettings withExternalDriver(String dir) {
        return edit(d -> {
            d.aeronDir = dir;
            d.externalDriver = true;
        });
    }

    public TransportSettings withThreadingMode(ThreadingMode mode) {
        return edit(d -> d.threadingMode = mode);
    }

    public TransportSettings withTermLengthBytes(int bytes) {
        return edit(d -> d.termLengthBytes = bytes);
    }

    public TransportSettings withMtuBytes(int bytes) {
        return edit(d -> d.mtuBytes = bytes);
    }

    public TransportSettings withIpcMtuBytes(int bytes) {
        return edit(d -> d.ipcMtuBytes = bytes);
    }

    public TransportSettings withChunkBytes(int bytes) {
        return edit(d -> d.chunkBytes = bytes);
    }

    public TransportSettings withSocketBufferBytes(int bytes) {
        return edit(d -> d.socketBufferBytes = bytes);
    }

    public TransportSettings withReceiveBudgetBytes(long bytes) {
        return edit(d -> d.receiveBudgetBytes = bytes);
    }

    public TransportSettings withReceiveSlotsMax(int slots) {
        return edit(d -> d.receiveSlotsMax = slots);
    }

    public TransportSettings withConnectTimeoutNs(long ns) {
        return edit(d -> d.connectTimeoutNs = ns);
    }

    public TransportSettings withBackPressureTimeoutNs(long ns) {
        return edit(d -> d.backPressureTimeoutNs = ns);
    }

    public TransportSettings withPeerLostTimeoutNs(long ns) {
        return edit(d -> d.peerLostTimeoutNs = ns);
    }

    /** CRC32C on UDP channels (see {@link #withIpcCrcEnabled} for IPC). */
    public TransportSettings withCrcEnabled(boolean enabled) {
        return edit(d -> d.crcEnabled = enabled);
    }

    public TransportSettings withLocalCopyMinBytes(long bytes) {
        return edit(d -> d.localCopyMinBytes = bytes);
    }

    public TransportSettings withUdp(String bindHost, int port) {
        return edit(d -> {
            d.udpBindHost = bindHost;
            d.udpPort = port;
        });
    }

    public TransportSettings withIpcCrcEnabled(boolean enabled) {
        return edit(d -> d.ipcCrcEnabled = enabled);
    }

    public TransportSettings withLoopbackMtuBytes(int bytes) {
        return edit(d -> d.loopbackMtuBytes = bytes);
    }

    public TransportSettings withReceiverWindowBytes(int bytes) {
        return edit(d -> d.receiverWindowBytes = bytes);
    }

    /**
     * From which tensor size same-host IPC to another process goes through the {@link IpcRing}; {@code Long.MAX_VALUE}:
     * never.
     */
    public TransportSettings withIpcRingMinBytes(long bytes) {
        return edit(d -> d.ipcRingMinBytes = bytes);
    }

    /** Chaos testing: the share of received UDP data frames the embedded driver drops ({@code 0}: none). */
    public TransportSettings withUdpLossRate(double rate) {
        return edit(d -> d.udpLossRate = rate);
    }

    /** Chaos testing: flips one payload byte of the {@code n}-th received UDP data frame ({@code 0}: never). */
    public TransportSettings withUdpCorruptNth(long n) {
        return edit(d -> d.udpCorruptNth = n);
    }

    /** Authenticates every UDP frame with {@code key} ({@code null}: none, the default). */
    public TransportSettings withAuthKey(FrameAuthKey key) {
        return edit(d -> d.authKey = key);
    }

    /** A copy of these settings with {@code change} applied, validated like any other. */
    private TransportSettings edit(Consumer<Draft> change) {
        Draft d = new Draft(this);
        change.accept(d);
        return d.build();
    }

    /** Every component, mutable: what a {@code withXxx} method changes before a new record is built. */
    private static final class Draft {
        private String aeronDir;
        private boolean externalDriver;
        private ThreadingMode threadingMode;
        private int termLengthBytes;
        private int mtuBytes;
        private int ipcMtuBytes;
        private int chunkBytes;
        private int socketBufferBytes;
        private long receiveBudgetBytes;
        private int receiveSlotsMax;
        private long connectTimeoutNs;
        private long backPressureTimeoutNs;
        private long peerLostTimeoutNs;
        private boolean crcEnabled;
        private long localCopyMinBytes;
        private String udpBindHost;
        private int udpPort;
        private boolean ipcCrcEnabled;
        private int receiverWindowBytes;
        private int loopbackMtuBytes;
        private long ipcRingMinBytes;
        private double udpLossRate;
        private FrameAuthKey authKey;
        private long udpCorruptNth;

        Draft(TransportSettings s) {
            aeronDir = s.aeronDir;
            externalDriver = s.externalDriver;
            threadingMode = s.threadingMode;
            termLengthBytes = s.termLengthBytes;
            mtuBytes = s.mtuBytes;
            ipcMtuBytes = s.ipcMtuBytes;
            chunkBytes = s.chunkBytes;
            socketBufferBytes = s.socketBufferBytes;
            receiveBudgetBytes = s.receiveBudgetBytes;
            receiveSlotsMax = s.receiveSlotsMax;
            connectTimeoutNs = s.connectTimeoutNs;
            backPressureTimeoutNs = s.backPressureTimeoutNs;
            peerLostTimeoutNs = s.peerLostTimeoutNs;
            crcEnabled = s.crcEnabled;
            localCopyMinBytes = s.localCopyMinBytes;
            udpBindHost = s.udpBindHost;
            udpPort = s.udpPort;
            ipcCrcEnabled = s.ipcCrcEnabled;
            receiverWindowBytes = s.receiverWindowBytes;
            loopbackMtuBytes = s.loopbackMtuBytes;
            ipcRingMinBytes = s.ipcRingMinBytes;
            udpLossRate = s.udpLossRate;
            authKey = s.authKey;
            udpCorruptNth = s.udpCorruptNth;
        }

        TransportSettings build() {
            return new TransportSettings(aeronDir, externalDriver, threadingMode, termLengthBytes, mtuBytes,
                ipcMtuBytes, chunkBytes, socketBufferBytes, receiveBudgetBytes, receiveSlotsMax, connectTimeoutNs,
                backPressureTimeoutNs, peerLostTimeoutNs, crcEnabled, localCopyMinBytes, udpBindHost, udpPort,
                ipcCrcEnabled, receiverWindowBytes, loopbackMtuBytes, ipcRingMinBytes, udpLossRate, authKey,
                udpCorruptNth);
        }
    }
}
