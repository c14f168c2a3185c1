package io.troupe.runtime.bench;

import io.aeron.driver.ThreadingMode;
import io.troupe.actors.cli.Options;
import io.troupe.bench.BenchOptions;
import io.troupe.bench.ByteSize;
import io.troupe.bench.Median;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.transport.FrameKind;
import io.troupe.runtime.transport.ReceiveSlot;
import io.troupe.runtime.transport.TensorReceiverAgent;
import io.troupe.runtime.transport.TensorSender;
import io.troupe.runtime.transport.TransportEndpoint;
import io.troupe.runtime.transport.TransportNode;
import io.troupe.runtime.transport.TransportSettings;
import io.troupe.runtime.transport.WorkerTransport;
import java.util.Arrays;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.agrona.UnsafeApi;
import org.agrona.concurrent.Agent;
import org.agrona.concurrent.AgentRunner;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.agrona.concurrent.BusySpinIdleStrategy;
import org.agrona.concurrent.IdleStrategy;
import org.agrona.concurrent.YieldingIdleStrategy;

/**
 * Transport benchmark: memcpy bandwidth (the baseline, measured in the same run), Troupe tensor
 * throughput for 1, 16 and 64 MiB tensors over IPC (same-JVM workers, which take the one-copy
 * in-process path; the shared-memory ring that workers in other processes on the host use; and, for
 * comparison, the Aeron log alone) and UDP loopback, and the
 * 4 KiB IPC round trip. {@code ipc_16m_gbps} is the same-JVM figure (the default for a node's workers).
 * UDP is measured with two driver threading modes: {@code SHARED}, the default (one thread sends,
 * receives, copies into images and zeroes logs), and {@code SHARED_NETWORK}, the mode
 * {@code cluster-config/multi-host.conf} gives the nodes that have UDP peers (the conductor, which zeroes
 * the consumed logs, runs apart from the network thread). {@code udp_16m_gbps} is the latter: Troupe
 * sends tensors over UDP only between hosts, so that is the configuration UDP traffic runs in.
 * Prints a table with ratios to memcpy; the last line is machine-readable:
 * {@code memcpy_gbps=<x> ipc_16m_gbps=<x> ipc_ratio=<x> udp_16m_gbps=<x> rtt_4k_p50_us=<x> rtt_4k_p99_us=<x>}.
 *
 * <p>GB/s are 10^9 bytes of tensor payload per second (memcpy: bytes copied per second). CRC is
 * off, as for a trusted link; everything else is the data plane as shipped, with settings printed.
 */
public final class TransportBench {
    private static final int MIB = 1024 * 1024;
    /** The driver threading mode of {@code cluster-config/multi-host.conf}: nodes with UDP peers. */
    static final ThreadingMode MULTI_HOST_MODE = ThreadingMode.SHARED_NETWORK;

    private TransportBench() {
    }

    /**
     * The data plane as this benchmark times it: the defaults with CRCs off (a trusted link), a {@code termBytes}
     * term of {@code chunkBytes} chunks, a 512 MiB receive budget and driver threading {@code mode}.
     */
    static TransportSettings benchSettings(long termBytes, long chunkBytes, ThreadingMode mode) {
        return TransportSettings.defaults()
            .withCrcEnabled(false)
            .withIpcCrcEnabled(false)
            .withReceiverWindowBytes(0)
            .withChunkBytes(64 * 1024) // before the term, which must hold 8 chunks
            .withTermLengthBytes((int) termBytes)
            .withChunkBytes((int) chunkBytes)
            .withReceiveBudgetBytes(512L * MIB)
            .withThreadingMode(mode);
    }

    /**
     * Runs the benchmark. Optional arguments {@code key=value} (sizes as {@code 65504}, {@code 64k}, {@code 4m}):
     * {@code term=} (default 64m), {@code chunk=} (default 4m), {@code mtu=}, {@code sockbuf=}, {@code window=}
     * (UDP loopback MTU, socket buffers and receiver window; default: {@link TransportSettings#defaults()}),
     * {@code mode=SHARED|SHARED_NETWORK|DEDICATED} (IPC and the first UDP row; default SHARED),
     * {@code runs=} timed runs of 512 MiB per size (default 10; the median is reported), {@code warm=} bytes
     * sent per size before timing (default 2g), {@code only=ipc|udp} to skip the rest (the summary line then
     * reports 0 for what was skipped).
     */
    public static void main(String[] args) throws Exception {
        TransportSettings defaults = TransportSettings.defaults();
        long termBytes = 64L * MIB;
        long chunkBytes = 4L * MIB;
        long mtuBytes = defaults.loopbackMtuBytes();
        long socketBytes = defaults.socketBufferBytes();
        long windowBytes = defaults.receiverWindowBytes();
        ThreadingMode mode = defaults.threadingMode();
        String only = "";
        int runs = 10;
        long warmBytes = 2048L * MIB;
        // key=value (as documented) or --key value / --key=value: one parser either way
        String[] dashed = new String[args.length];
        for (int i = 0; i < args.length; i++) {
            dashed[i] = args[i].startsWith("-") ? args[i] : "--" + args[i];
        }
        Options o = BenchOptions.parse(dashed, "transport", "usage: scripts/bench transport [term=64m] [chunk=4m]"
            + " [mtu=64k] [sockbuf=4m] [window=4m] [mode=SHARED|SHARED_NETWORK|DEDICATED] [runs=10] [warm=2g]"
            + " [only=ipc|udp]", Set.of("term", "chunk", "mtu", "sockbuf", "window", "mode", "only", "runs", "warm"),
            Set.of());
        for (Map.Entry<String, String> option : o.all().entrySet()) {
            String[] kv = {option.getKey(), option.getValue()};
            switch (kv[0]) {
                case "term" -> termBytes = ByteSize.parse(kv[1]);
                case "chunk" -> chunkBytes = ByteSize.parse(kv[1]);
                case "mtu" -> mtuBytes = ByteSize.parse(kv[1]);
                case "sockbuf" -> socketBytes = ByteSize.parse(kv[1]);
                case "window" -> windowBytes = ByteSize.parse(kv[1]);
                case "mode" -> mode = ThreadingMode.valueOf(kv[1]);
                case "only" -> {
                    if (!kv[1].equals("ipc") && !kv[1].equals("udp")) {
                        throw new IllegalArgumentException("only must be ipc or udp: only=" + kv[1]);
                    }
                    only = kv[1];
                }
                case "runs" -> runs = Integer.parseInt(kv[1]);
                case "warm" -> warmBytes = ByteSize.parse(kv[1]);
                default -> throw new IllegalStateException("option not handled: " + kv[0]);
            }
        }
        String loadAverage = loadAverage();
        double memcpy = memcpyGbps(64 * MIB);
        TransportSettings ipc = benchSettings(termBytes, chunkBytes, mode);
        TransportSettings udp = ipc
            .withLoopbackMtuBytes((int) mtuBytes)
            .withSocketBufferBytes((int) socketBytes)
            .withReceiverWindowBytes((int) windowBytes);
        int[] sizes = {MIB, 16 * MIB, 64 * MIB};
        double[] ipcGbps = new double[sizes.length];
        double[] ipcRingGbps = new double[sizes.length];
        double[] ipcLogGbps = new double[sizes.length];
        long[] rtt = new long[1];
        if (!only.equals("udp")) {
            try (TransportNode node = TransportNode.launch(ipc, Throwable::printStackTrace)) {
                for (int i = 0; i < sizes.length; i++) {
                    ipcGbps[i] = throughputGbps(node, false, sizes[i], runs, warmBytes);
                }
                rtt = roundTripNs(node, 4096, 20_000);
            }
            // without the in-process link a same-node peer is served as one in another process: the ring
            try (TransportNode node = TransportNode.launch(ipc.withLocalCopyMinBytes(Long.MAX_VALUE),
                Throwable::printStackTrace)) {
                for (int i = 0; i < sizes.length; i++) {
                    ipcRingGbps[i] = throughputGbps(node, false, sizes[i], runs, warmBytes);
                }
            }
            try (TransportNode node = TransportNode.launch(ipc.withLocalCopyMinBytes(Long.MAX_VALUE)
                .withIpcRingMinBytes(Long.MAX_VALUE), Throwable::printStackTrace)) {
                for (int i = 0; i < sizes.length; i++) {
                    ipcLogGbps[i] = throughputGbps(node, false, sizes[i], runs, warmBytes);
                }
            }
        }
        ThreadingMode[] udpModes = mode == MULTI_HOST_MODE ? new ThreadingMode[] {mode}
            : new ThreadingMode[] {mode, MULTI_HOST_MODE};
        double[][] udpByMode = new double[udpModes.length][sizes.length];
        if (!only.equals("ipc")) {
            for (int m = 0; m < udpModes.length; m++) {
                try (TransportNode node = TransportNode.launch(udp.withThreadingMode(udpModes[m]),
                    Throwable::printStackTrace)) {
                    try {
                        for (int i = 0; i < sizes.length; i++) {
                            udpByMode[m][i] = throughputGbps(node, true, sizes[i], runs, warmBytes);
                        }
                    } finally {
                        printDriverCounters(node);
                    }
                }
            }
        }
        double[] udpGbps = udpByMode[udpModes.length - 1];
        double p50 = rtt[rtt.length / 2] / 1000.0;
        double p99 = rtt[(int) (rtt.length * 0.99)] / 1000.0;

        System.out.println();
        System.out.println("load average before the run: " + loadAverage);
        System.out.printf(
            "Troupe transport benchmark (%d cores, CRC off, chunk %d KiB, term %d KiB, UDP loopback mtu %d,"
            + " socket buffers %d KiB, receiver window %d KiB, %s driver; median of %d runs of 512 MiB after %d MiB)%n",
            Runtime.getRuntime().availableProcessors(), ipc.chunkBytes() / 1024, ipc.termLengthBytes() / 1024,
            udp.loopbackMtuBytes(), udp.socketBufferBytes() / 1024, udp.effectiveReceiverWindowBytes() / 1024,
            udp.threadingMode(), runs, warmBytes / MIB);
        System.out.println("| case | size | GB/s | x memcpy |");
        System.out.println("| --- | --- | --- | --- |");
        row("memcpy (Unsafe.copyMemory)", 64 * MIB, memcpy, memcpy);
        for (int i = 0; i < sizes.length; i++) {
            row("IPC, same JVM (one in-process copy)", sizes[i], ipcGbps[i], memcpy);
        }
        for (int i = 0; i < sizes.length; i++) {
            row("IPC to another JVM (shared-memory ring)", sizes[i], ipcRingGbps[i], memcpy);
        }
        for (int i = 0; i < sizes.length; i++) {
            row("IPC through the Aeron log (ring off)", sizes[i], ipcLogGbps[i], memcpy);
        }
        for (int m = 0; m < udpModes.length; m++) {
            for (int i = 0; i < sizes.length; i++) {
                row("UDP loopback tensor (127.0.0.1), " + udpModes[m] + " driver"
                    + (udpModes[m] == MULTI_HOST_MODE ? " (multi-host.conf)" : ""), sizes[i], udpByMode[m][i], memcpy);
            }
        }
        System.out.printf(Locale.ROOT, "| IPC round trip 4 KiB | p50 %.1f us | p99 %.1f us | |%n", p50, p99);
        System.out.printf(Locale.ROOT,
            "memcpy_gbps=%.2f ipc_16m_gbps=%.2f ipc_ratio=%.3f udp_16m_gbps=%.2f"
                + " rtt_4k_p50_us=%.1f rtt_4k_p99_us=%.1f%n",
            memcpy, ipcGbps[1], ipcGbps[1] / memcpy, udpGbps[1], p50, p99);
    }

    /** Loss, retransmission and flow-control counters of the UDP driver (why UDP was slow, if it was). */
    private static void printDriverCounters(TransportNode node) {
        node.aeron().countersReader().forEach((value, id, label) -> {
            String l = label.toLowerCase(Locale.ROOT);
            if (id < 64 && value != 0 && (l.contains("nak") || l.contains("retransmit") || l.contains("loss")
                || l.contains("flow control") || l.contains("heartbeats") || l.contains("exceeded"))) {
                System.out.println("udp driver counter: " + label + " = " + value);
            }
        });
    }

    /** The machine's load average (the benchmark shares 2 cores with whatever else runs). */
    private static String loadAverage() {
        try {
            return java.nio.file.Files.readString(java.nio.file.Path.of("/proc/loadavg")).trim();
        } catch (java.io.IOException e) {
            return "unknown";
        }
    }

    private static void row(String name, int bytes, double gbps, double memcpy) {
        System.out.printf(Locale.ROOT, "| %s | %d MiB | %.2f | %.3f |%n", name, bytes / MIB, gbps, gbps / memcpy);
    }

    /** Best of several timed 64 MiB copies between two native blocks (touched first). */
    static double memcpyGbps(int bytes) {
        long src = UnsafeApi.allocateMemory(bytes + 64L);
        long dst = UnsafeApi.allocateMemory(bytes + 64L);
        try {
            long s = (src + 63) & -64L;
            long d = (dst + 63) & -64L;
            UnsafeApi.setMemory(s, bytes, (byte) 1);
            UnsafeApi.setMemory(d, bytes, (byte) 2);
            double best = 0;
            for (int i = 0; i < 20; i++) {
                long t0 = System.nanoTime();
                UnsafeApi.copyMemory(s, d, bytes);
                long t1 = System.nanoTime();
                best = Math.max(best, bytes / (double) (t1 - t0));
            }
            return best;
        } finally {
            UnsafeApi.freeMemory(src);
            UnsafeApi.freeMemory(dst);
        }
    }

    /** Counts and releases delivered tensors on the receiver's thread. */
    private static final class Sink implements TensorReceiverAgent.Listener {
        volatile long delivered;
        volatile long peersLost;

        @Override
        public void onPeerLost(int peerRank) {
            peersLost++;
            System.out.printf("peer %d lost after %d of its tensors%n", peerRank, delivered);
        }

        @Override
        public void onPeerConnected(int peerRank, String sourceIdentity) {
            if (delivered > 0) {
                System.out.printf("peer %d reconnected from %s after %d tensors%n", peerRank, sourceIdentity,
                    delivered);
            }
        }

        @Override
        public void onTensorReady(ReceiveSlot slot) {
            slot.release();
            delivered++;
        }
    }

    private static AgentRunner start(Agent agent, IdleStrategy idle) {
        AgentRunner runner = new AgentRunner(idle, Throwable::printStackTrace, null, agent);
        AgentRunner.startOnThread(runner);
        return runner;
    }

    private static IdleStrategy backoff() {
        return new BackoffIdleStrategy(10, 10, TimeUnit.MICROSECONDS.toNanos(10), TimeUnit.MICROSECONDS.toNanos(200));
    }

    private static TransportEndpoint target(WorkerTransport rx, boolean udp) {
        TransportEndpoint ep = rx.endpoint();
        return udp ? new TransportEndpoint("bench-remote", ep.host(), ep.port(), ep.streamId()) : ep;
    }

    /**
     * Median of {@code runCount} timed runs of ~512 MiB (at least 4 tensors) each, after a warm-up of
     * {@code warmBytes} (at least 4 tensors). Prints the runs in order, the share of the wall time each busy
     * thread of this JVM used during them, and the process's minor page faults meanwhile.
     */
    static double throughputGbps(TransportNode node, boolean udp, int bytes, int runs, long warmBytes) {
        try {
            return measureThroughputGbps(node, udp, bytes, runs, warmBytes);
        } catch (RuntimeException e) {
            System.out.printf("%s %3d MiB: failed, reported as NaN: %s%n", udp ? "udp" : "ipc", bytes / MIB, e);
            return Double.NaN;
        }
    }

    private static double measureThroughputGbps(TransportNode node, boolean udp, int bytes, int runCount,
                                                long warmBytes) {
        Sink sink = new Sink();
        long src = UnsafeApi.allocateMemory(bytes + 64L);
        long addr = (src + 63) & -64L;
        UnsafeApi.setMemory(addr, bytes, (byte) 7);
        int[] shape = {bytes / 4};
        try (WorkerTransport rx = node.openWorker("bench-rx", 1, 0, sink, Throwable::printStackTrace);
             WorkerTransport tx = node.openWorker("bench-tx", 0, 0, slot -> { }, Throwable::printStackTrace)) {
            // over UDP the driver thread moves the bytes: parked application threads leave it a core
            // IPC: the data plane's default sender idling (spin, yield, then park): a sender that only
            // yields while a same-JVM receiver copies its tensor takes CPU from that copy on 2 cores
            TensorSender sender = udp ? tx.connect(1, target(rx, udp), 0, backoff()) : tx.connect(1, target(rx, udp),
                0);
            AgentRunner runner = start(rx.receiver(), udp ? backoff() : new YieldingIdleStrategy());
            try {
                awaitConnected(sender);
                int count = Math.max(4, 512 * MIB / bytes);
                long sent = 0;
                // warmed by volume: C2 compiles the driver's and the receiver's loops, and every page of the
                // logs (3 terms each for publication and image) is mapped, before the timed runs
                long warm = Math.max(4, warmBytes / bytes);
                for (long i = 0; i < warm; i++, sent++) {
                    sender.send(FrameKind.ACTIVATION, 0, (int) (i & 3), DType.F32, shape, 1, addr, bytes);
                }
                awaitDelivered(sink, sent);
                double[] runs = new double[runCount];
                ThreadCpu cpu = ThreadCpu.start();
                for (int r = 0; r < runs.length; r++) {
                    long t0 = System.nanoTime();
                    for (int i = 0; i < count; i++, sent++) {
                        sender.send(FrameKind.ACTIVATION, 0, i & 3, DType.F32, shape, 1, addr, bytes);
                    }
                    awaitDelivered(sink, sent);
                    runs[r] = (double) count * bytes / (System.nanoTime() - t0);
                }
                String busy = cpu.busiest(4);
                StringBuilder each = new StringBuilder();
                for (double run : runs) {
                    each.append(each.length() == 0 ? "" : " ").append(String.format(Locale.ROOT, "%.2f", run));
                }
                double median = Median.of(runs);
                System.out.printf(Locale.ROOT, "%s %3d MiB (%s): runs %s GB/s, median %.2f; busy: %s%n",
                    udp ? "udp" : "ipc", bytes / MIB, node.settings().threadingMode(), each, median, busy);
                return median;
            } finally {
                runner.close();
            }
        } finally {
            UnsafeApi.freeMemory(src);
        }
    }

    private static void awaitConnected(TensorSender sender) {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!sender.isConnected()) {
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("bench publication did not connect: " + sender.publication().channel());
            }
            Thread.yield();
        }
    }

    private static void awaitDelivered(Sink sink, long n) {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (sink.delivered < n) {
            if (System.nanoTime() > deadline || sink.peersLost > 0) {
                throw new IllegalStateException("only " + sink.delivered + " of " + n + " tensors delivered; peer lost "
                    + sink.peersLost + " times");
            }
            Thread.yield(); // leave the core to the threads that move the bytes
        }
    }

    /** Echoes every tensor back to rank 0 from its own thread. */
    private static final class Echo implements Agent, TensorReceiverAgent.Listener {
        private final TensorReceiverAgent rx;
        private TensorSender back;
        private ReceiveSlot pending;
        private final int[] shape = new int[4];

        Echo(WorkerTransport worker) {
            this.rx = worker.receiver();
        }

        @Override
        public void onTensorReady(ReceiveSlot slot) {
            pending = slot;
        }

        @Override
        public int doWork() {
            int work = rx.doWork();
            ReceiveSlot slot = pending;
            if (slot != null) {
                pending = null;
                shape[0] = slot.dim(0);
                back.send(slot.kind(), slot.step(), slot.tensorKey(), slot.dtype(), shape, 1, slot.address(),
                    slot.lengthBytes());
                slot.release();
                work++;
            }
            return work;
        }

        @Override
        public String roleName() {
            return "bench-echo";
        }
    }

    /** Sorted round-trip times of a {@code bytes} tensor A -> B -> A over IPC, after a warm-up. */
    static long[] roundTripNs(TransportNode node, int bytes, int iterations) {
        long src = UnsafeApi.allocateMemory(bytes + 64L);
        long addr = (src + 63) & -64L;
        UnsafeApi.setMemory(addr, bytes, (byte) 3);
        int[] shape = {bytes / 4};
        ReceiveSlot[] arrived = new ReceiveSlot[1];
        TensorReceiverAgent.Listener onA = slot -> arrived[0] = slot;
        try (WorkerTransport a = node.openWorker("rtt-a", 0, 0, onA, Throwable::printStackTrace)) {
            Echo echo;
            WorkerTransport b;
            Echo[] holder = new Echo[1];
            b = node.openWorker("rtt-b", 1, 0, slot -> holder[0].onTensorReady(slot), Throwable::printStackTrace);
            try {
                echo = new Echo(b);
                holder[0] = echo;
                echo.back = b.connect(0, a.endpoint(), 0, new BusySpinIdleStrategy());
                TensorSender toB = a.connect(1, b.endpoint(), 0, new BusySpinIdleStrategy());
                AgentRunner runner = start(echo, new BusySpinIdleStrategy());
                try {
                    awaitConnected(toB);
                    awaitConnected(echo.back);
                    long[] samples = new long[iterations];
                    TensorReceiverAgent rxA = a.receiver();
                    for (int i = -iterations / 4; i < iterations; i++) {
                        long t0 = System.nanoTime();
                        toB.send(FrameKind.CONTROL, i, 0, DType.F32, shape, 1, addr, bytes);
                        long deadline = t0 + TimeUnit.SECONDS.toNanos(10);
                        while (arrived[0] == null) {
                            rxA.doWork();
                            if (System.nanoTime() > deadline) {
                                throw new IllegalStateException("round trip " + i + " lost");
                            }
                        }
                        long t1 = System.nanoTime();
                        arrived[0].release();
                        arrived[0] = null;
                        rxA.doWork();
                        if (i >= 0) {
                            samples[i] = t1 - t0;
                        }
                    }
                    Arrays.sort(samples);
                    return samples;
                } finally {
                    runner.close();
                }
            } finally {
                b.close();
            }
        } finally {
            UnsafeApi.freeMemory(src);
        }
    }
}
