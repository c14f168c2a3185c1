package io.troupe.runtime.transport;

import io.aeron.Aeron;
import io.aeron.AeronCounters;
import io.aeron.CommonContext;
import io.aeron.driver.MediaDriver;
import io.aeron.driver.ext.DebugReceiveChannelEndpoint;
import io.aeron.driver.ext.LossGenerator;
import io.aeron.driver.ext.RandomLossGenerator;
import java.io.File;
import java.net.InetAddress;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.agrona.CloseHelper;
import org.agrona.ErrorHandler;
import org.agrona.IoUtil;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.agrona.concurrent.status.CountersReader;

/**
 * The data plane of one node: an embedded Aeron {@link MediaDriver} (or a connection to an external
 * one) and one Aeron client, shared by all workers of the node (and by several logical nodes in one
 * JVM). Workers open their {@link WorkerTransport} from here.
 *
 * <p>The embedded driver's directory is unique per launch ({@code /dev/shm/troupe-<pid>-<n>-<random>},
 * {@link DriverDirectory}) unless {@code aeronDir} is given; a stale directory left by a crashed
 * driver is deleted on start (a live driver's is refused; generated directories of dead processes
 * are swept), and the directory is deleted on {@link #close()}.
 *
 * <p>Threading: {@link #openWorker} and {@link #close} from setup code; the node itself runs no loop.
 * {@link #framesDropped} from any thread.
 */
public final class TransportNode implements AutoCloseable {
    private static final AtomicInteger LAUNCHES = new AtomicInteger();
    private static final AtomicInteger EXTERNAL_NODES = new AtomicInteger();
    /** First stream id handed to a worker; stream ids are per node. */
    public static final int FIRST_STREAM_ID = 1001;

    private final TransportSettings settings;
    private final MediaDriver driver;
    private final Aeron aeron;
    private final String aeronDir;
    private final String nodeId;
    /**
     * Stream ids of this node's workers. Processes that share an external driver must not share
     * stream ids (an IPC subscription gets every publication of its stream, and the in-process copy
     * registry would take another process's worker for its own), so such a node starts at a base
     * of its own: {@code 1001 + ((pid % 100000) * 20 + n % 20) * 1000} for the {@code n}-th external
     * node of this process (1000 worker streams each).
     */
    private final AtomicInteger nextStreamId;
    private final LocalCopyRegistry localCopyRegistry = new LocalCopyRegistry();
    private final PeerTraffic traffic = new PeerTraffic();
    /** Workers opened and not yet closed; guarded by itself, as is {@link #closedWorkerDrops}. */
    private final List<WorkerTransport> openWorkers = new ArrayList<>();
    /** Frames dropped by the receivers of closed workers, by {@link DropReason} ordinal. */
    private final long[] closedWorkerDrops = new long[DropReason.values().length];

    private TransportNode(TransportSettings settings, MediaDriver driver, Aeron aeron, String aeronDir, String nodeId) {
        this.settings = settings;
        this.driver = driver;
        this.aeron = aeron;
        this.aeronDir = aeronDir;
        this.nodeId = nodeId;
        this.nextStreamId = new AtomicInteger(settings.externalDriver() ? FIRST_STREAM_ID
            + ((int) (ProcessHandle.current().pid() % 100_000) * 20 + EXTERNAL_NODES.getAndIncrement() % 20) * 1000
            : FIRST_STREAM_ID);
    }

    /** Starts the node's driver (or connects to the external one) and its Aeron client. */
    public static TransportNode launch(TransportSettings settings, ErrorHandler errorHandler) {
        if (settings.aeronDir() == null) {
            sweepStaleDirs(DriverDirectory.baseDir());
        }
        String dir = settings.aeronDir() != null ? settings.aeronDir()
            : DriverDirectory.generated(LAUNCHES.incrementAndGet());
        MediaDriver driver = null;
        Aeron aeron = null;
        try {
            if (!settings.externalDriver()) {
                File d = new File(dir);
                if (d.exists() && CommonContext.isDriverActive(d, TimeUnit.SECONDS.toMillis(2), s -> { })) {
                    throw new IllegalStateException("aeron dir is in use by a live media driver: aeronDir=" + dir);
                }
                DriverDirectory.checkOwned(d);
                driver = MediaDriver.launch(driverContext(settings, dir, errorHandler));
                DriverDirectory.mark(d);
            }
            // pre-touching the logs moves page faults (costly first touches in a VM) to publication setup
            aeron = Aeron.connect(new Aeron.Context().aeronDirectoryName(dir).errorHandler(errorHandler)
                .preTouchMappedMemory(true));
            return new TransportNode(settings, driver, aeron, dir, nodeIdFor(dir));
        } catch (RuntimeException e) {
            CloseHelper.quietCloseAll(aeron, driver);
            if (driver != null) {
                IoUtil.delete(new File(dir), true);
            }
            throw e;
        }
    }

    /**
     * Launches a standalone media driver in {@code dir} with the same settings an embedded one gets:
     * the host driver that several node processes on one machine share (they connect with
     * {@code externalDriver}), so their workers reach each other over IPC instead of UDP, and one
     * driver thread serves them all. The caller closes it (which deletes the directory).
     *
     * @throws IllegalStateException when a live driver already uses {@code dir}, or {@code dir} exists
     *                               and Troupe did not create it ({@link DriverDirectory})
     */
    public static MediaDriver launchDriver(TransportSettings settings, String dir, ErrorHandler errorHandler) {
        File d = new File(dir);
        if (d.exists() && CommonContext.isDriverActive(d, TimeUnit.SECONDS.toMillis(2), s -> { })) {
            throw new IllegalStateException("aeron dir is in use by a live media driver: aeronDir=" + dir);
        }
        DriverDirectory.checkOwned(d);
        MediaDriver driver = MediaDriver.launch(driverContext(settings, dir, errorHandler));
        DriverDirectory.mark(d);
        return driver;
    }

    static MediaDriver.Context driverContext(TransportSettings s, String dir, ErrorHandler errorHandler) {
        // measured on Aeron 1.51: an image is reported unavailable about 1 s after its liveness timeout
        // (timer ticks and the drain/linger state changes), so liveness is set below peerLostTimeoutNs
        long peerLostNs = s.peerLostTimeoutNs();
        long timerNs = Math.max(TimeUnit.MILLISECONDS.toNanos(10), Math.min(peerLostNs / 10,
            TimeUnit.SECONDS.toNanos(1)));
        long livenessNs = Math.max(peerLostNs / 2, peerLostNs - TimeUnit.MILLISECONDS.toNanos(1500));
        MediaDriver.Context context = new MediaDriver.Context()
            .aeronDirectoryName(dir)
            .dirDeleteOnStart(true)
            .dirDeleteOnShutdown(true)
            .warnIfDirectoryExists(false)
            .threadingMode(s.threadingMode())
            .sharedIdleStrategy(backoff())
            .sharedNetworkIdleStrategy(backoff())
            .conductorIdleStrategy(backoff())
            .senderIdleStrategy(backoff())
            .receiverIdleStrategy(backoff())
            .asyncExecutorIdleStrategy(new BackoffIdleStrategy(1, 1, TimeUnit.MICROSECONDS.toNanos(100),
                TimeUnit.MILLISECONDS.toNanos(10)))
            .publicationTermBufferLength(s.termLengthBytes())
            .ipcTermBufferLength(s.termLengthBytes())
            .mtuLength(s.mtuBytes())
            .ipcMtuLength(s.ipcMtuBytes())
            .socketSndbufLength(s.socketBufferBytes())
            .socketRcvbufLength(s.socketBufferBytes())
            .initialWindowLength(s.effectiveReceiverWindowBytes())
            .timerIntervalNs(timerNs)
            .imageLivenessTimeoutNs(livenessNs)
            .publicationConnectionTimeoutNs(peerLostNs)
            .publicationLingerTimeoutNs(Math.min(peerLostNs, TimeUnit.SECONDS.toNanos(5)))
            .errorHandler(errorHandler);
        if (s.udpLossRate() > 0 || s.udpCorruptNth() > 0) {
            // chaos testing: received data frames dropped at random before Aeron sees them; status
            // messages and NAKs pass, so every loss must be repaired by retransmission. The n-th data
            // frame has one payload byte flipped (and is kept): only the frame's own checks can catch it.
            LossGenerator random = s.udpLossRate() > 0 ? new RandomLossGenerator(s.udpLossRate(), dir.hashCode())
                : (address, buffer, length) -> false;
            LossGenerator dataLoss = s.udpCorruptNth() > 0 ? new FrameCorrupter(s.udpCorruptNth(), random) : random;
            LossGenerator noLoss = (address, buffer, length) -> false;
            context.receiveChannelEndpointSupplier((channel, dispatcher, status, ctx) ->
                new DebugReceiveChannelEndpoint(channel, dispatcher, status, ctx, dataLoss, noLoss));
        }
        return context;
    }

    private static BackoffIdleStrategy backoff() {
        return new BackoffIdleStrategy(64, 16, TimeUnit.MICROSECONDS.toNanos(1), TimeUnit.MILLISECONDS.toNanos(1));
    }

    /**
     * Deletes generated driver directories ({@code troupe-<pid>-...}) whose process is gone and whose
     * driver is not live: what a killed node leaves behind. Returns how many were deleted.
     */
    static int sweepStaleDirs(String base) {
        File[] entries = new File(base).listFiles((d, name) -> name.startsWith(DriverDirectory.GENERATED_PREFIX));
        int deleted = 0;
        for (File f : entries == null ? new File[0] : entries) {
            String[] parts = f.getName().substring(DriverDirectory.GENERATED_PREFIX.length()).split("-");
            long pid;
            try {
                pid = Long.parseLong(parts[0]);
            } catch (NumberFormatException e) {
                continue;
            }
            if (pid != ProcessHandle.current().pid() && ProcessHandle.of(pid).isEmpty() && !driverActive(f)) {
                IoUtil.delete(f, true);
                deleted++;
            }
        }
        return deleted;
    }

    /**
     * Whether a live driver uses {@code dir}. A directory whose process is gone may hold a CnC file
     * that was never initialised (the process died as its driver started) or one another sweep is
     * deleting right now: Aeron throws on those, and neither has a live driver.
     */
    private static boolean driverActive(File dir) {
        try {
            return CommonContext.isDriverActive(dir, TimeUnit.SECONDS.toMillis(10), s -> { });
        } catch (io.aeron.exceptions.AeronException | IllegalStateException e) {
            return false;
        }
    }

    private static String nodeIdFor(String dir) {
        String host;
        try {
            host = InetAddress.getLocalHost().getHostName();
        } catch (Exception e) {
            host = "localhost";
        }
        String canonical;
        try {
            canonical = new File(dir).getCanonicalPath();
        } catch (Exception e) {
            canonical = dir;
        }
        return "n" + Long.toHexString(((long) host.hashCode() << 32) ^ (canonical.hashCode() & 0xFFFFFFFFL));
    }

    public TransportSettings settings() {
        return settings;
    }

    public Aeron aeron() {
        return aeron;
    }

    /**
     * The sum of the media driver's system counters whose label contains {@code labelPart}, ignoring case
     * (e.g. {@code "naks sent"}, {@code "retransmits sent"}): how a node sees loss and its repair.
     */
    public long driverCounter(String labelPart) {
        String part = labelPart.toLowerCase(Locale.ROOT);
        CountersReader counters = aeron.countersReader();
        long[] sum = {0};
        counters.forEach((id, typeId, key, label) -> {
            if (typeId == AeronCounters.DRIVER_SYSTEM_COUNTER_TYPE_ID
                && label.toLowerCase(Locale.ROOT).contains(part)) {
                sum[0] += counters.getCounterValue(id);
            }
        });
        return sum[0];
    }

    /** The media driver directory. */
    public String aeronDir() {
        return aeronDir;
    }

    /** Identifies the driver: workers with the same node id talk over IPC. */
    public String nodeId() {
        return nodeId;
    }

    /** True when this node embeds its driver. */
    public boolean embedsDriver() {
        return driver != null;
    }

    /**
     * How long the embedded driver keeps the image of a peer it no longer hears before dropping it, ns, which
     * reports the peer lost: derived from {@link TransportSettings#peerLostTimeoutNs} so that the report comes
     * within it. 0 with an external driver (its own setting applies).
     */
    long imageLivenessTimeoutNs() {
        return driver == null ? 0 : driver.context().imageLivenessTimeoutNs();
    }

    LocalCopyRegistry localCopyRegistry() {
        return localCopyRegistry;
    }

    int nextStreamId() {
        return nextStreamId.getAndIncrement();
    }

    /**
     * Opens the data plane of one worker: its receiver (IPC + UDP subscriptions) and endpoint.
     *
     * @param rank  the worker's rank, or -1 until assigned ({@link WorkerTransport#assign})
     * @param epoch the current epoch
     */
    public WorkerTransport openWorker(String name, int rank, long epoch, TensorReceiverAgent.Listener listener,
                                      ErrorHandler errorHandler) {
        WorkerTransport w = new WorkerTransport(this, name, rank, epoch, listener, errorHandler);
        synchronized (openWorkers) {
            openWorkers.add(w);
        }
        return w;
    }

    /** A worker closed (its receiver stopped): its drops join the node's totals. Idempotent. */
    void workerClosed(WorkerTransport w) {
        synchronized (openWorkers) {
            if (openWorkers.remove(w)) {
                FrameDropCounters drops = w.receiver().drops();
                for (DropReason r : DropReason.values()) {
                    closedWorkerDrops[r.ordinal()] += drops.count(r);
                }
            }
        }
    }

    /**
     * Frames dropped for {@code reason} by the receivers of every worker this node opened, open or
     * closed (never decreases). Any thread.
     */
    public long framesDropped(DropReason reason) {
        synchronized (openWorkers) {
            long sum = closedWorkerDrops[reason.ordinal()];
            for (WorkerTransport w : openWorkers) {
                sum += w.receiver().drops().count(reason);
            }
            return sum;
        }
    }

    /** Tensor bytes this node's workers sent to and received from each peer rank. */
    public PeerTraffic traffic() {
        return traffic;
    }

    /** Closes the client, then the embedded driver, and deletes the driver directory. */
    @Override
    public void close() {
        CloseHelper.closeAll(aeron, driver);
        if (driver != null) {
            IoUtil.delete(new File(aeronDir), true);
        }
    }
}
