package io.troupe.runtime.bench;

import io.aeron.driver.ThreadingMode;
import io.troupe.actors.cli.Options;
import io.troupe.bench.BenchOptions;
import io.troupe.bench.ByteSize;
import io.troupe.bench.Median;
import io.troupe.runtime.launch.ChildJvm;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.transport.DriverDirectory;
import io.troupe.runtime.transport.FrameKind;
import io.troupe.runtime.transport.ReceiveSlot;
import io.troupe.runtime.transport.TensorReceiverAgent;
import io.troupe.runtime.transport.TensorSender;
import io.troupe.runtime.transport.TransportEndpoint;
import io.troupe.runtime.transport.TransportNode;
import io.troupe.runtime.transport.TransportSettings;
import io.troupe.runtime.transport.WorkerTransport;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.agrona.UnsafeApi;
import org.agrona.concurrent.Agent;
import org.agrona.concurrent.AgentRunner;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.agrona.concurrent.CompositeAgent;
import org.agrona.concurrent.IdleStrategy;

/**
 * The data plane's UDP MTU to other hosts over a real 1500-byte link: tensor throughput
 * ({@code TensorSender} -> {@code TensorReceiverAgent} over {@code aeron:udp}, the path of
 * {@link TransportBench}'s UDP rows) between two Linux network namespaces joined by veth pairs and a bridge,
 * every link set to MTU 1500, for each data-plane {@code mtu} asked (default 1408 and 8192), with the
 * link losing packets at each rate asked (default 0, 0.1% and 1%). A datagram above the link's MTU is
 * IP-fragmented, and the loss of one fragment loses the whole datagram: that is what the loss rows show.
 *
 * <p>The sender and the receiver are child JVMs, each started in its namespace with {@code ip netns exec}
 * and each with its own embedded media driver ({@code SHARED_NETWORK}, as {@code multi-host.conf} gives
 * nodes with UDP peers), as on two hosts. The sender child holds one node per MTU, the receiver one
 * worker per MTU; timed runs of the MTUs alternate (A B, B A, ...), so a slower phase of a shared
 * machine falls on both. A run's time is from the sender's first send to the receiver's delivery of
 * the run's last tensor (both {@code System.nanoTime()}, one clock for every process of the machine);
 * the children report both over their stdout, answering commands on their stdin. Every wait is
 * bounded: a run that does not finish within {@code run-timeout} is reported as stalled, its MTU left
 * out of the remaining runs of that size and loss (the children are started again without it).
 *
 * <p>Loss: {@code tc netem} on each namespace's veth (egress) where the kernel has it, else an nftables
 * rule on the same device's egress hook ({@code numgen random}); both drop single packets, i.e. single
 * IP fragments. {@code loss-dir=both} (default) drops on both namespaces' egress: data frames, and the
 * receiver's status messages and NAKs; {@code loss-dir=data} only the sender's. Where neither tool
 * works, the loss rows are skipped and say so.
 *
 * <p>Needs root (or CAP_NET_ADMIN) and the {@code ip} tool; without them it prints
 * {@code netns_udp_skipped=1 reason=...} and exits 0. The namespaces, bridge and veths come from
 * {@code scripts/lib/netns.sh}, named after this JVM's pid and removed at the end (also on Ctrl-C; a
 * killed run's names are swept by the next).
 *
 * <p>Output: per run, the timings; per MTU, size and loss rate, the median GB/s (10^9 payload bytes per
 * second) and the counters that explain it (the sender's driver: NAKs received, retransmits, short sends;
 * the receiver's: NAKs sent, loss gap fills; both kernels: fragments created, reassemblies and their
 * failures, UDP buffer errors), summed over the timed runs; a table; and one line per size and loss:
 * {@code netns_udp_16m_gbps_mtu1408=<x> netns_udp_16m_gbps_mtu8192=<x> ratio=<1408/8192> loss=<p>%}.
 */
public final class NetnsTransportBench {
    private static final int MIB = 1024 * 1024;
    private static final String USAGE = "usage: scripts/bench transport-netns [mtus=1408,8192] [loss=0,0.1,1]"
        + " [loss-dir=both|data] [sizes=1m,16m] [runs=5] [run=256m] [warm=512m] [run-timeout=60] [term=64m]"
        + " [chunk=4m] [sockbuf=4m] [window=0]";
    private static final long START_TIMEOUT_MS = 90_000;
    private static final long REPLY_TIMEOUT_MS = 30_000;
    /** Kernel counters (/proc/net/snmp) that tell fragmentation and its losses. */
    private static final List<String> KERNEL_COUNTERS = List.of("Ip.FragCreates", "Ip.ReasmReqds", "Ip.ReasmOKs",
        "Ip.ReasmFails", "Ip.ReasmTimeout", "Udp.InDatagrams", "Udp.RcvbufErrors", "Udp.SndbufErrors", "Udp.InErrors");
    /** Driver system counters (label parts, lower case) that tell loss and its repair. */
    private static final List<String> DRIVER_COUNTERS = List.of("naks sent", "naks received", "retransmits sent",
        "retransmitted bytes", "short sends", "loss gap fills", "flow control under runs", "flow control over runs",
        "invalid packets", "retransmit pool overflow");

    private NetnsTransportBench() {
    }

    /** Options of one run of the coordinator (and what the children are started with). */
    private record Config(List<Integer> mtus, List<Double> losses, boolean lossBothWays, List<Integer> sizes, int runs,
                          long runBytes, long warmBytes, long runTimeoutMs, long termBytes, long chunkBytes,
                          long socketBytes, long windowBytes) {
        List<String> childArgs() {
            return List.of("term=" + termBytes, "chunk=" + chunkBytes, "sockbuf=" + socketBytes,
                "window=" + windowBytes);
        }

        Map<String, String> childArgsMap() {
            return keyValues(childArgs().toArray(String[]::new), 0);
        }
    }

    /**
     * The coordinator, run in the root namespace: {@code key=value} options as in the usage; sizes as
     * {@code 65504}, {@code 64k}, {@code 4m}; {@code loss} in percent; {@code run-timeout} in seconds.
     */
    public static void main(String[] args) throws Exception {
        String[] dashed = new String[args.length];
        for (int i = 0; i < args.length; i++) {
            dashed[i] = args[i].startsWith("-") ? args[i] : "--" + args[i];
        }
        Options o = BenchOptions.parse(dashed, "transport-netns", USAGE, Set.of("mtus", "loss", "loss-dir", "sizes",
            "runs", "run", "warm", "run-timeout", "term", "chunk", "sockbuf", "window"), Set.of());
        Map<String, String> opt = o.all();
        List<Integer> mtus = new ArrayList<>();
        for (String m : opt.getOrDefault("mtus", "1408,8192").split(",")) {
            mtus.add((int) ByteSize.parse(m.trim()));
        }
        List<Double> losses = new ArrayList<>();
        for (String l : opt.getOrDefault("loss", "0,0.1,1").split(",")) {
            double p = Double.parseDouble(l.trim().replace("%", ""));
            if (!(p >= 0 && p < 100)) {
                throw new IllegalArgumentException("loss is a percentage in [0, 100): loss=" + l);
            }
            losses.add(p);
        }
        String dir = opt.getOrDefault("loss-dir", "both");
        if (!dir.equals("both") && !dir.equals("data")) {
            throw new IllegalArgumentException("loss-dir must be both or data: loss-dir=" + dir);
        }
        List<Integer> sizes = new ArrayList<>();
        for (String s : opt.getOrDefault("sizes", "1m,16m").split(",")) {
            sizes.add((int) ByteSize.parse(s.trim()));
        }
        Config c = new Config(mtus, losses, dir.equals("both"), sizes, Integer.parseInt(opt.getOrDefault("runs", "5")),
            ByteSize.parse(opt.getOrDefault("run", "256m")), ByteSize.parse(opt.getOrDefault("warm", "512m")),
            TimeUnit.SECONDS.toMillis(Long.parseLong(opt.getOrDefault("run-timeout", "60"))),
            ByteSize.parse(opt.getOrDefault("term", "64m")), ByteSize.parse(opt.getOrDefault("chunk", "4m")),
            ByteSize.parse(opt.getOrDefault("sockbuf", "4m")), ByteSize.parse(opt.getOrDefault("window", "0")));
        for (int mtu : mtus) {
            settings(c.childArgsMap(), "127.0.0.1", mtu); // a bad MTU or size fails here, naming it
        }
        System.exit(new Coordinator(c).run());
    }

    // ---------------------------------------------------------------------------------------------
    // settings shared by both children

    /** The data plane as {@link TransportBench}'s UDP rows run it, on {@code bindHost}, with UDP MTU {@code mtu}. */
    static TransportSettings settings(Map<String, String> args, String bindHost, int mtu) {
        long term = ByteSize.parse(args.getOrDefault("term", "64m"));
        long chunk = ByteSize.parse(args.getOrDefault("chunk", "4m"));
        return TransportBench.benchSettings(term, chunk, ThreadingMode.SHARED_NETWORK)
            .withMtuBytes(mtu)
            .withSocketBufferBytes((int) ByteSize.parse(args.getOrDefault("sockbuf", "4m")))
            .withReceiverWindowBytes((int) ByteSize.parse(args.getOrDefault("window", "0")))
            .withUdp(bindHost, 0);
    }

    private static Map<String, String> keyValues(String[] args, int from) {
        Map<String, String> m = new LinkedHashMap<>();
        for (int i = from; i < args.length; i++) {
            int eq = args[i].indexOf('=');
            if (eq < 0) {
                throw new IllegalArgumentException("child arguments are key=value: " + args[i]);
            }
            m.put(args[i].substring(0, eq), args[i].substring(eq + 1));
        }
        return m;
    }

    private static IdleStrategy backoff() {
        return new BackoffIdleStrategy(10, 10, TimeUnit.MICROSECONDS.toNanos(10), TimeUnit.MICROSECONDS.toNanos(200));
    }

    /** Driver system counters of {@code node} and this process's network namespace's kernel counters. */
    static Map<String, Long> counters(TransportNode node) {
        Map<String, Long> out = new LinkedHashMap<>();
        for (String part : DRIVER_COUNTERS) {
            out.put("driver." + part, node.driverCounter(part));
        }
        out.putAll(kernelCounters());
        String sockstat = readOr("/proc/self/net/sockstat", "");
        Matcher frag = Pattern.compile("FRAG: inuse (\\d+) memory (\\d+)").matcher(sockstat);
        if (frag.find()) {
            out.put("max.kernel.frag-queues-held", Long.parseLong(frag.group(1)));
            out.put("max.kernel.frag-bytes-held", Long.parseLong(frag.group(2)));
        }
        return out;
    }

    /** The {@link #KERNEL_COUNTERS} of this process's network namespace (/proc/self/net/snmp). */
    static Map<String, Long> kernelCounters() {
        Map<String, Long> out = new LinkedHashMap<>();
        try {
            List<String> lines = Files.readAllLines(Path.of("/proc/self/net/snmp"));
            for (int i = 0; i + 1 < lines.size(); i += 2) {
                String[] names = lines.get(i).split("\\s+");
                String[] values = lines.get(i + 1).split("\\s+");
                String proto = names[0].replace(":", "");
                for (int k = 1; k < names.length && k < values.length; k++) {
                    String key = proto + "." + names[k];
                    if (KERNEL_COUNTERS.contains(key)) {
                        out.put("kernel." + key, Long.parseLong(values[k]));
                    }
                }
            }
        } catch (IOException | RuntimeException e) {
            out.put("kernel.unreadable", -1L);
        }
        return out;
    }

    private static void printCounters(String label, Map<String, Long> counters) {
        synchronized (System.out) {
            for (Map.Entry<String, Long> e : counters.entrySet()) {
                System.out.println("counter\t" + label + "\t" + e.getKey() + "\t" + e.getValue());
            }
            System.out.println("counters-end " + label);
        }
    }

    // ---------------------------------------------------------------------------------------------
    // receiver child

    /** Counts and releases one MTU's tensors on the receiver's thread; signals when a target count is reached. */
    private static final class Sink implements TensorReceiverAgent.Listener {
        private final String label;
        private volatile long delivered;
        private volatile long target = Long.MAX_VALUE;
        private volatile CountDownLatch reached = new CountDownLatch(1);
        private volatile long reachedNs;

        Sink(String label) {
            this.label = label;
        }

        @Override
        public void onTensorReady(ReceiveSlot slot) {
            slot.release();
            long n = delivered + 1;
            delivered = n; // one writer: the receiver's thread
            if (n >= target && reached.getCount() > 0) {
                reachedNs = System.nanoTime();
                reached.countDown();
            }
        }

        @Override
        public void onPeerLost(int peerRank) {
            System.out.println("peer-lost " + label + " " + delivered);
        }

        /** Waits (at most {@code timeoutMs}) for {@code total} tensors; prints the outcome. */
        void await(long total, long timeoutMs) throws InterruptedException {
            CountDownLatch latch = new CountDownLatch(1);
            reached = latch;
            target = total;
            ThreadCpu cpu = ThreadCpu.start();
            System.out.println("armed " + label);
            if (delivered >= total && latch.getCount() > 0) { // reached before the target was set
                reachedNs = System.nanoTime();
                latch.countDown();
            }
            if (latch.await(timeoutMs, TimeUnit.MILLISECONDS)) {
                System.out.println("delivered " + label + " " + delivered + " " + reachedNs + " busy: "
                    + cpu.busiest(3));
            } else {
                System.out.println("await-timeout " + label + " " + delivered);
            }
        }
    }

    /**
     * The receiving side, started by the coordinator in its namespace: {@code receiver bind=<address>
     * labels=<a,b> term= chunk= sockbuf= window=}. One node (its own embedded driver) with one worker per label;
     * prints {@code ready <label> <endpoint>} for each and then {@code ready-all}; answers {@code await <label>
     * <total> <timeout-ms>} with {@code delivered <label> <count> <nanoTime>} or {@code await-timeout ...},
     * {@code counters <label>} with {@code counter} lines and {@code counters-end <label>}; ends on {@code exit}
     * or the end of its stdin.
     */
    static void receiverMain(Map<String, String> args) throws Exception {
        String bind = args.get("bind");
        List<String> labels = List.of(args.get("labels").split(","));
        TransportSettings s = settings(args, bind, TransportSettings.DEFAULT_MTU_BYTES);
        try (TransportNode node = TransportNode.launch(s, Throwable::printStackTrace)) {
            Map<String, Sink> sinks = new LinkedHashMap<>();
            List<WorkerTransport> workers = new ArrayList<>();
            List<Agent> agents = new ArrayList<>();
            try {
                for (String label : labels) {
                    Sink sink = new Sink(label);
                    WorkerTransport w = node.openWorker("netns-rx-" + label, 1, 0, sink, Throwable::printStackTrace);
                    workers.add(w);
                    sinks.put(label, sink);
                    agents.add(w.receiver());
                    System.out.println("ready " + label + " " + w.endpoint());
                }
                AgentRunner runner = new AgentRunner(backoff(), Throwable::printStackTrace, null,
                    new CompositeAgent(agents));
                AgentRunner.startOnThread(runner);
                try {
                    System.out.println("ready-all");
                    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
                    for (String line; (line = in.readLine()) != null && !line.equals("exit"); ) {
                        String[] w = line.trim().split(" ");
                        switch (w[0]) {
                            case "await" -> sinks.get(w[1]).await(Long.parseLong(w[2]), Long.parseLong(w[3]));
                            case "counters" -> printCounters(w[1], counters(node));
                            default -> System.out.println("unknown-command " + line);
                        }
                    }
                } finally {
                    runner.close();
                }
            } finally {
                for (WorkerTransport w : workers) {
                    w.close();
                }
            }
        }
        System.out.println("bye");
    }

    // ---------------------------------------------------------------------------------------------
    // sender child

    /** One MTU's node, worker and sender, fed by its own thread. */
    private static final class Lane implements Runnable {
        private final String label;
        private final TransportNode node;
        private final WorkerTransport worker;
        private final TensorSender sender;
        private final BlockingQueue<long[]> work = new LinkedBlockingQueue<>();
        private final Map<Long, Long> buffers = new LinkedHashMap<>();

        Lane(String label, TransportNode node, TransportEndpoint peer) {
            this.label = label;
            this.node = node;
            this.worker = node.openWorker("netns-tx-" + label, 0, 0, slot -> slot.release(),
                Throwable::printStackTrace);
            // parked application threads leave the driver's threads the cores, as in TransportBench's UDP rows
            this.sender = worker.connect(1, peer, 0, backoff());
        }

        @Override
        public void run() {
            try {
                while (true) {
                    long[] job = work.take();
                    if (job.length == 0) {
                        return;
                    }
                    send((int) job[0], job[1]);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }

        private void send(int bytes, long count) {
            long addr = buffers.computeIfAbsent((long) bytes, b -> {
                long raw = UnsafeApi.allocateMemory(b + 64L);
                long a = (raw + 63) & -64L;
                UnsafeApi.setMemory(a, b, (byte) 7);
                return a;
            });
            int[] shape = {bytes / 4};
            ThreadCpu cpu = ThreadCpu.start();
            long t0 = System.nanoTime();
            try {
                for (long i = 0; i < count; i++) {
                    sender.send(FrameKind.ACTIVATION, 0, (int) (i & 3), DType.F32, shape, 1, addr, bytes);
                }
                long t1 = System.nanoTime();
                System.out.println("sent " + label + " " + count + " " + t0 + " " + t1 + " busy: " + cpu.busiest(3));
            } catch (RuntimeException e) {
                System.out.println("send-failed " + label + " " + e.toString().replace('\n', ' '));
            }
        }

        void close() {
            worker.close();
            node.close();
        }
    }

    /**
     * The sending side, started by the coordinator in its namespace: {@code sender bind=<address>
     * peers=<mtu>@<endpoint>;... term= chunk= sockbuf= window=}. One node (its own embedded driver) per MTU,
     * each with a worker connected to its endpoint; prints {@code connected} once every sender is; answers
     * {@code send <mtu> <bytes> <count>} (on that MTU's own thread) with {@code sent <mtu> <count> <t0> <t1>} or
     * {@code send-failed <mtu> <why>}, {@code counters <mtu>} with {@code counter} lines and
     * {@code counters-end <mtu>}; ends on {@code exit} or the end of its stdin.
     */
    static void senderMain(Map<String, String> args) throws Exception {
        String bind = args.get("bind");
        Map<String, Lane> lanes = new LinkedHashMap<>();
        List<Thread> threads = new ArrayList<>();
        try {
            for (String peer : args.get("peers").split(";")) {
                String label = peer.substring(0, peer.indexOf('@'));
                TransportEndpoint ep = TransportEndpoint.parse(peer.substring(peer.indexOf('@') + 1));
                TransportNode node = TransportNode.launch(settings(args, bind, Integer.parseInt(label)),
                    Throwable::printStackTrace);
                try {
                    lanes.put(label, new Lane(label, node, ep));
                } catch (RuntimeException e) {
                    node.close();
                    throw e;
                }
            }
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            IdleStrategy idle = backoff();
            for (Lane lane : lanes.values()) {
                while (!lane.sender.isConnected()) {
                    if (System.nanoTime() > deadline) {
                        throw new IllegalStateException("publication did not connect within 30 s: "
                            + lane.sender.publication().channel());
                    }
                    idle.idle();
                }
            }
            for (Lane lane : lanes.values()) {
                Thread t = new Thread(lane, "netns-tx-" + lane.label);
                t.start();
                threads.add(t);
            }
            System.out.println("connected");
            BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
            for (String line; (line = in.readLine()) != null && !line.equals("exit"); ) {
                String[] w = line.trim().split(" ");
                switch (w[0]) {
                    case "send" -> lanes.get(w[1]).work.add(new long[] {Long.parseLong(w[2]), Long.parseLong(w[3])});
                    case "counters" -> printCounters(w[1], counters(lanes.get(w[1]).node));
                    default -> System.out.println("unknown-command " + line);
                }
            }
        } finally {
            for (Lane lane : lanes.values()) {
                lane.work.add(new long[0]);
            }
            for (Thread t : threads) {
                t.join(TimeUnit.SECONDS.toMillis(15));
            }
            for (Lane lane : lanes.values()) {
                lane.close();
            }
        }
        System.out.println("bye");
    }

    /** Entry point of the two children: {@code receiver ...} or {@code sender ...} (see their mains). */
    public static final class Child {
        private Child() {
        }

        /** Runs the role {@code args[0]} with the {@code key=value} arguments after it. */
        public static void main(String[] args) throws Exception {
            Map<String, String> kv = keyValues(args, 1);
            switch (args.length == 0 ? "" : args[0]) {
                case "receiver" -> receiverMain(kv);
                case "sender" -> senderMain(kv);
                default -> throw new IllegalArgumentException("role must be receiver or sender: " + List.of(args));
            }
            System.exit(0); // the drivers' threads are gone; nothing else must keep the child alive
        }
    }

    // ---------------------------------------------------------------------------------------------
    // coordinator

    /** A child JVM in a namespace, its stdout read line by line into a queue (no polling). */
    private static final class Proc implements AutoCloseable {
        private static final String EOF = "\u0000eof";
        private final String name;
        private final Process process;
        private final PrintWriter stdin;
        private final BlockingQueue<String> lines = new LinkedBlockingQueue<>();
        private final Deque<String> recent = new ArrayDeque<>();
        /** The receiver's endpoints by MTU, as it named them. */
        final Map<Integer, String> endpoints = new LinkedHashMap<>();

        Proc(String name, List<String> command) throws IOException {
            this.name = name;
            this.process = new ProcessBuilder(command).redirectErrorStream(true).start();
            this.stdin = new PrintWriter(new OutputStreamWriter(process.getOutputStream(), StandardCharsets.UTF_8),
                true);
            Thread reader = new Thread(() -> {
                try (BufferedReader r = new BufferedReader(new InputStreamReader(process.getInputStream(),
                    StandardCharsets.UTF_8))) {
                    for (String line; (line = r.readLine()) != null; ) {
                        lines.add(line);
                    }
                } catch (IOException e) {
                    lines.add(name + " output: " + e);
                } finally {
                    lines.add(EOF);
                }
            }, "netns-" + name + "-output");
            reader.setDaemon(true);
            reader.start();
        }

        void send(String line) {
            stdin.println(line);
        }

        /**
         * The next line that {@code wanted} accepts, within {@code timeoutMs}; {@code null} on timeout. Other
         * lines that are not protocol lines (the child's warnings, stack traces) are echoed, prefixed.
         */
        String await(Predicate<String> wanted, long timeoutMs) throws InterruptedException {
            long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
            while (true) {
                long left = deadline - System.nanoTime();
                String line = left <= 0 ? null : lines.poll(left, TimeUnit.NANOSECONDS);
                if (line == null) {
                    return null;
                }
                if (line.equals(EOF)) {
                    lines.add(EOF); // every later wait sees it too
                    throw new IllegalStateException(name + " exited" + exitCode() + "; last output:\n"
                        + String.join("\n", recent));
                }
                remember(line);
                if (wanted.test(line)) {
                    return line;
                }
                if (!line.startsWith("counter") && !line.startsWith("sent ") && !line.startsWith("delivered ")) {
                    System.out.println("  [" + name + "] " + line);
                }
            }
        }

        String awaitPrefix(String prefix, long timeoutMs) throws InterruptedException {
            String line = await(l -> l.startsWith(prefix), timeoutMs);
            if (line == null) {
                throw new IllegalStateException(name + " did not print '" + prefix + "' within " + timeoutMs
                    + " ms; last output:\n" + String.join("\n", recent));
            }
            return line;
        }

        Map<String, Long> counters(String label) throws InterruptedException {
            send("counters " + label);
            Map<String, Long> out = new LinkedHashMap<>();
            while (true) {
                String line = await(l -> l.startsWith("counter"), REPLY_TIMEOUT_MS);
                if (line == null) {
                    throw new IllegalStateException(name + " did not answer 'counters' within " + REPLY_TIMEOUT_MS
                        + " ms");
                }
                if (line.startsWith("counters-end")) {
                    return out;
                }
                String[] f = line.split("\t");
                out.put(f[2], Long.parseLong(f[3]));
            }
        }

        private void remember(String line) {
            recent.addLast(line);
            if (recent.size() > 40) {
                recent.removeFirst();
            }
        }

        private String exitCode() {
            try {
                return process.waitFor(5, TimeUnit.SECONDS) ? " with " + process.exitValue() : "";
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return "";
            }
        }

        @Override
        public void close() throws InterruptedException {
            if (process.isAlive()) {
                stdin.println("exit");
                stdin.close();
                if (!process.waitFor(20, TimeUnit.SECONDS)) {
                    process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
                }
            }
            DriverDirectory.deleteGenerated(process.pid()); // a killed child's driver directories
        }
    }

    /** One MTU's figures at one size and loss rate. */
    private static final class Result {
        final List<Double> runs = new ArrayList<>();
        final Map<String, Long> counters = new LinkedHashMap<>();
        /** Counter deltas over the run that stalled. */
        final Map<String, Long> stallCounters = new LinkedHashMap<>();
        String stalled;

        double median() {
            return runs.isEmpty() ? Double.NaN : Median.of(runs);
        }

        void add(Map<String, Long> into, Map<String, Long> before, Map<String, Long> after, String side) {
            for (Map.Entry<String, Long> e : after.entrySet()) {
                if (e.getKey().startsWith("max.")) { // a level (after each run), not a count
                    into.merge(side + "." + e.getKey().substring(4) + " (max)", e.getValue(), Math::max);
                    continue;
                }
                long d = e.getValue() - before.getOrDefault(e.getKey(), 0L);
                into.merge(side + "." + e.getKey(), d, Long::sum);
            }
        }
    }

    /** Creates the namespaces, runs every loss rate, size and MTU, prints, removes the namespaces. */
    private static final class Coordinator {
        private final Config c;
        private final String owner = Long.toString(ProcessHandle.current().pid());
        private final Path netnsScript;
        private final String[] ns = new String[2];
        private final String[] host = new String[2];
        private final String[] inside = new String[2];
        private LossTool loss;
        private final Map<Double, Map<Integer, Map<Integer, Result>>> results = new LinkedHashMap<>();

        Coordinator(Config c) {
            this.c = c;
            String home = System.getenv("TROUPE_HOME");
            Path root = Path.of(home != null ? home : System.getProperty("user.dir"));
            this.netnsScript = root.resolve("scripts/lib/netns.sh");
        }

        int run() throws Exception {
            String loadAverage = readOr("/proc/loadavg", "unknown").trim();
            if (!Files.isReadable(netnsScript)) {
                System.out.println("netns_udp_skipped=1 reason=no scripts/lib/netns.sh at " + netnsScript
                    + " (run from the repository root or set TROUPE_HOME)");
                return 0;
            }
            try {
                netns("troupe_netns_available");
            } catch (IllegalStateException e) {
                System.out.println("transport-netns: skipped: cannot create network namespaces here (needs root or"
                    + " CAP_NET_ADMIN and the ip tool)");
                System.out.println("netns_udp_skipped=1 reason=no-network-namespaces");
                return 0;
            }
            Thread cleanup = new Thread(this::destroyQuietly, "netns-cleanup");
            Runtime.getRuntime().addShutdownHook(cleanup);
            try {
                createLinks();
                loss = LossTool.detect(ns[0], inside[0]);
                System.out.println("loss tool: " + loss.describe());
                for (double p : c.losses()) {
                    if (p > 0 && !loss.works()) {
                        System.out.printf(Locale.ROOT, "loss %s%%: skipped: %s%n", pct(p), loss.describe());
                        continue;
                    }
                    runLossRate(p);
                }
            } finally {
                destroyQuietly();
                try {
                    Runtime.getRuntime().removeShutdownHook(cleanup);
                } catch (IllegalStateException e) {
                    // already shutting down: the hook runs (and finds nothing left)
                }
            }
            print(loadAverage);
            return 0;
        }

        private void createLinks() throws Exception {
            String out = netns("troupe_netns_create 2 && for i in 1 2; do echo \"host $(troupe_netns_name $i)"
                + " $(troupe_netns_host $i) $(troupe_netns_link $i)\"; done && echo \"bridge $(troupe_netns_bridge)\"");
            String bridge = null;
            List<String> outside = new ArrayList<>();
            int i = 0;
            for (String line : out.lines().toList()) {
                String[] f = line.split(" ");
                if (f[0].equals("host")) {
                    ns[i] = f[1];
                    host[i] = f[2];
                    outside.add(f[3]);
                    inside[i] = f[3].substring(0, f[3].length() - 1) + "b";
                    i++;
                } else if (f[0].equals("bridge")) {
                    bridge = f[1];
                }
            }
            if (i != 2 || bridge == null) {
                throw new IllegalStateException("netns.sh did not name two hosts and a bridge:\n" + out);
            }
            // a 1500-byte link everywhere, set explicitly and read back
            for (int k = 0; k < 2; k++) {
                sh("ip", "link", "set", outside.get(k), "mtu", "1500");
                sh("ip", "-n", ns[k], "link", "set", inside[k], "mtu", "1500");
            }
            sh("ip", "link", "set", bridge, "mtu", "1500");
            StringBuilder mtus = new StringBuilder();
            List<String[]> links = List.of(new String[] {null, bridge}, new String[] {null, outside.get(0)},
                new String[] {null, outside.get(1)}, new String[] {ns[0], inside[0]}, new String[] {ns[1], inside[1]});
            for (String[] l : links) {
                String show = l[0] == null ? sh("ip", "-o", "link", "show", "dev", l[1])
                    : sh("ip", "-n", l[0], "-o", "link", "show", "dev", l[1]);
                Matcher m = Pattern.compile(" mtu (\\d+) ").matcher(show);
                String mtu = m.find() ? m.group(1) : "?";
                mtus.append(mtus.length() == 0 ? "" : ", ").append(l[1]).append(l[0] == null ? "" : " (in " + l[0]
                    + ")").append(" mtu ").append(mtu);
                if (!mtu.equals("1500")) {
                    throw new IllegalStateException("link " + l[1] + " has mtu " + mtu + ", not 1500: " + show);
                }
            }
            System.out.println("hosts: sender " + host[0] + " in " + ns[0] + ", receiver " + host[1] + " in " + ns[1]
                + " (veth pairs on a bridge)");
            System.out.println("links: " + mtus);
        }

        private void runLossRate(double p) throws Exception {
            if (p > 0) {
                loss.apply(ns[0], inside[0], p);
                if (c.lossBothWays()) {
                    loss.apply(ns[1], inside[1], p);
                }
            }
            try {
                Map<Integer, Map<Integer, Result>> bySize = new LinkedHashMap<>();
                results.put(p, bySize);
                for (int bytes : c.sizes()) {
                    Map<Integer, Result> byMtu = new LinkedHashMap<>();
                    for (int mtu : c.mtus()) {
                        byMtu.put(mtu, new Result());
                    }
                    bySize.put(bytes, byMtu);
                    measure(p, bytes, byMtu);
                }
            } finally {
                if (p > 0) {
                    String dropped = loss.dropped(ns[0], inside[0]) + " packets from the sender"
                        + (c.lossBothWays() ? ", " + loss.dropped(ns[1], inside[1]) + " from the receiver" : "");
                    System.out.printf(Locale.ROOT, "loss %s%%: dropped %s%n", pct(p), dropped);
                    loss.clear(ns[0], inside[0]);
                    if (c.lossBothWays()) {
                        loss.clear(ns[1], inside[1]);
                    }
                }
            }
        }

        /** All MTUs at one size and loss rate: warm-up, then alternating timed runs; a stalled MTU drops out. */
        private void measure(double p, int bytes, Map<Integer, Result> byMtu) throws Exception {
            int count = (int) Math.max(4, c.runBytes() / bytes);
            long warm = Math.max(4, c.warmBytes() / bytes);
            int run = 0;
            while (run < c.runs()) {
                List<Integer> active = new ArrayList<>();
                for (int mtu : c.mtus()) {
                    if (byMtu.get(mtu).stalled == null) {
                        active.add(mtu);
                    }
                }
                if (active.isEmpty()) {
                    return;
                }
                try (Proc rx = startReceiver(active); Proc tx = startSender(active, rx)) {
                    Map<Integer, Long> total = new LinkedHashMap<>();
                    boolean stalled = false;
                    for (int mtu : active) {
                        long warmTimeout = c.runTimeoutMs() * Math.max(1, c.warmBytes() / Math.max(1, c.runBytes()));
                        Outcome o = timedSend(rx, tx, mtu, bytes, warm, warm, warmTimeout);
                        total.put(mtu, warm);
                        if (o.failure != null) {
                            byMtu.get(mtu).stalled = "warm-up: " + o.failure;
                            report(p, bytes, mtu, byMtu.get(mtu));
                            stalled = true;
                            break;
                        }
                    }
                    for (; run < c.runs() && !stalled; run++) {
                        List<Integer> order = new ArrayList<>(active);
                        if (run % 2 == 1) {
                            java.util.Collections.reverse(order);
                        }
                        for (int mtu : order) {
                            Result r = byMtu.get(mtu);
                            if (r.runs.size() > run) {
                                continue; // timed in this round before another MTU stalled
                            }
                            Map<String, Long> txBefore = tx.counters(Integer.toString(mtu));
                            Map<String, Long> rxBefore = rx.counters(Integer.toString(mtu));
                            long t = total.get(mtu) + count;
                            Outcome o = timedSend(rx, tx, mtu, bytes, count, t, c.runTimeoutMs());
                            total.put(mtu, t);
                            if (o.failure != null) {
                                r.stalled = "run " + (run + 1) + ": " + o.failure;
                                try { // what the drivers and kernels did meanwhile: repair that never caught up?
                                    r.add(r.stallCounters, txBefore, tx.counters(Integer.toString(mtu)), "sender");
                                    r.add(r.stallCounters, rxBefore, rx.counters(Integer.toString(mtu)), "receiver");
                                } catch (RuntimeException e) {
                                    r.stallCounters.put("unavailable: " + e.getMessage(), -1L);
                                }
                                report(p, bytes, mtu, r);
                                stalled = true;
                                break;
                            }
                            r.add(r.counters, txBefore, tx.counters(Integer.toString(mtu)), "sender");
                            r.add(r.counters, rxBefore, rx.counters(Integer.toString(mtu)), "receiver");
                            r.runs.add(o.gbps);
                            System.out.printf(Locale.ROOT, "loss %s%% %2d MiB mtu %5d run %d: %.3f GB/s; busy: %s%n",
                                pct(p), bytes / MIB, mtu, run + 1, o.gbps, o.busy);
                        }
                    }
                }
            }
            for (int mtu : c.mtus()) {
                if (byMtu.get(mtu).stalled == null) {
                    report(p, bytes, mtu, byMtu.get(mtu));
                }
            }
        }

        private record Outcome(double gbps, String failure, String busy) {
            Outcome(double gbps, String failure) {
                this(gbps, failure, "");
            }
        }

        private static String busy(String line) {
            int at = line.indexOf(" busy: ");
            return at < 0 ? "?" : line.substring(at + " busy: ".length());
        }

        /** Sends {@code count} tensors on {@code mtu}'s lane and waits for the receiver to count {@code total}. */
        private Outcome timedSend(Proc rx, Proc tx, int mtu, int bytes, long count, long total, long timeoutMs)
            throws InterruptedException {
            String label = Integer.toString(mtu);
            rx.send("await " + label + " " + total + " " + timeoutMs);
            rx.awaitPrefix("armed " + label, REPLY_TIMEOUT_MS);
            tx.send("send " + label + " " + bytes + " " + count);
            String done = rx.await(l -> l.startsWith("delivered " + label + " ") || l.startsWith("await-timeout "
                + label + " ") || l.startsWith("peer-lost " + label + " "), timeoutMs + REPLY_TIMEOUT_MS);
            if (done == null || !done.startsWith("delivered")) {
                String why = done == null ? "no answer" : done;
                return new Outcome(Double.NaN, String.format(Locale.ROOT, "did not finish within %d s (%s)",
                    timeoutMs / 1000, why));
            }
            String sent = tx.await(l -> l.startsWith("sent " + label + " ") || l.startsWith("send-failed " + label),
                REPLY_TIMEOUT_MS);
            if (sent == null || !sent.startsWith("sent")) {
                return new Outcome(Double.NaN, "sender: " + (sent == null ? "no answer" : sent));
            }
            long t0 = Long.parseLong(sent.split(" ")[3]);
            long t1 = Long.parseLong(done.split(" ")[3]);
            if (t1 <= t0) {
                throw new IllegalStateException("the receiver's delivery time precedes the first send: " + done
                    + " / " + sent);
            }
            return new Outcome((double) count * bytes / (t1 - t0), null, "sender " + busy(sent) + "; receiver "
                + busy(done));
        }

        private void report(double p, int bytes, int mtu, Result r) {
            StringBuilder each = new StringBuilder();
            for (double g : r.runs) {
                each.append(each.length() == 0 ? "" : " ").append(String.format(Locale.ROOT, "%.3f", g));
            }
            System.out.printf(Locale.ROOT, "loss %s%% %2d MiB mtu %5d: runs %s, median %s%s%n", pct(p), bytes / MIB,
                mtu, each.length() == 0 ? "-" : each, gbps(r), r.stalled == null ? "" : "; stalled: " + r.stalled);
            if (!r.counters.isEmpty()) {
                System.out.printf(Locale.ROOT, "  counters over %d timed runs: %s%n", r.runs.size(),
                    nonZero(r.counters));
            }
            if (!r.stallCounters.isEmpty()) {
                System.out.printf(Locale.ROOT, "  counters over the stalled run: %s%n", nonZero(r.stallCounters));
            }
        }

        private static String nonZero(Map<String, Long> counters) {
            StringBuilder sb = new StringBuilder();
            for (Map.Entry<String, Long> e : counters.entrySet()) {
                if (e.getValue() != 0) {
                    sb.append(sb.length() == 0 ? "" : ", ").append(e.getKey()).append('=').append(e.getValue());
                }
            }
            return sb.toString();
        }

        private Proc startReceiver(List<Integer> mtus) throws Exception {
            List<String> args = new ArrayList<>(List.of("receiver", "bind=" + host[1], "labels=" + join(mtus, ",")));
            args.addAll(c.childArgs());
            Proc rx = new Proc("receiver", inNamespace(ns[1], args));
            try {
                // "ready <mtu> <endpoint>" for each MTU, then "ready-all"
                for (String line = ""; !line.equals("ready-all"); ) {
                    line = rx.awaitPrefix("ready", START_TIMEOUT_MS);
                    String[] f = line.split(" ");
                    if (f.length == 3) {
                        rx.endpoints.put(Integer.parseInt(f[1]), f[2]);
                    }
                }
            } catch (RuntimeException e) {
                rx.close();
                throw e;
            }
            return rx;
        }

        private Proc startSender(List<Integer> mtus, Proc rx) throws Exception {
            List<String> peers = new ArrayList<>();
            for (int mtu : mtus) {
                String endpoint = rx.endpoints.get(mtu);
                if (endpoint == null) {
                    throw new IllegalStateException("the receiver named no endpoint for mtu " + mtu + ": "
                        + rx.endpoints);
                }
                peers.add(mtu + "@" + endpoint);
            }
            List<String> args = new ArrayList<>(List.of("sender", "bind=" + host[0], "peers=" + String.join(";",
                peers)));
            args.addAll(c.childArgs());
            Proc tx = new Proc("sender", inNamespace(ns[0], args));
            try {
                tx.awaitPrefix("connected", START_TIMEOUT_MS);
            } catch (RuntimeException e) {
                tx.close();
                throw e;
            }
            return tx;
        }

        private static List<String> inNamespace(String namespace, List<String> args) {
            List<String> cmd = new ArrayList<>(List.of("ip", "netns", "exec", namespace));
            cmd.addAll(ChildJvm.command(Child.class, List.of("-Xmx512m", "-XX:+UseSerialGC"), args));
            return cmd;
        }

        private void print(String loadAverage) {
            System.out.println();
            System.out.println("load average before the run: " + loadAverage);
            System.out.printf(Locale.ROOT, "Troupe UDP between two network namespaces over a 1500-byte link (%d cores,"
                + " %s; CRC off, chunk %d KiB, term %d KiB, socket buffers %d KiB, SHARED_NETWORK drivers; median of"
                + " %d alternating runs of %d MiB after %d MiB per MTU; loss on %s)%n",
                Runtime.getRuntime().availableProcessors(), cpuModel(), c.chunkBytes() / 1024, c.termBytes() / 1024,
                c.socketBytes() / 1024, c.runs(), c.runBytes() / MIB, c.warmBytes() / MIB,
                c.lossBothWays() ? "both directions" : "the sender's egress (data) only");
            StringBuilder head = new StringBuilder("| loss | size |");
            StringBuilder rule = new StringBuilder("| --- | --- |");
            for (int mtu : c.mtus()) {
                head.append(" mtu ").append(mtu).append(" GB/s |");
                rule.append(" --- |");
            }
            if (c.mtus().size() == 2) {
                head.append(" ").append(c.mtus().get(0)).append(" / ").append(c.mtus().get(1)).append(" |");
                rule.append(" --- |");
            }
            System.out.println(head);
            System.out.println(rule);
            List<String> summary = new ArrayList<>();
            for (Map.Entry<Double, Map<Integer, Map<Integer, Result>>> byLoss : results.entrySet()) {
                for (Map.Entry<Integer, Map<Integer, Result>> bySize : byLoss.getValue().entrySet()) {
                    StringBuilder row = new StringBuilder("| " + pct(byLoss.getKey()) + "% | " + bySize.getKey() / MIB
                        + " MiB |");
                    StringBuilder line = new StringBuilder();
                    for (int mtu : c.mtus()) {
                        Result r = bySize.getValue().get(mtu);
                        row.append(' ').append(gbps(r)).append(" |");
                        line.append(String.format(Locale.ROOT, "netns_udp_%dm_gbps_mtu%d=%s ", bySize.getKey() / MIB,
                            mtu, r.stalled != null ? "stalled" : String.format(Locale.ROOT, "%.3f", r.median())));
                    }
                    if (c.mtus().size() == 2) {
                        Result a = bySize.getValue().get(c.mtus().get(0));
                        Result b = bySize.getValue().get(c.mtus().get(1));
                        String ratio = a.stalled == null && b.stalled != null ? "inf"
                            : a.stalled != null ? "0" : String.format(Locale.ROOT, "%.3f", a.median() / b.median());
                        row.append(' ').append(ratio).append(" |");
                        line.append("ratio=").append(ratio).append(' ');
                    }
                    summary.add(line + "loss=" + pct(byLoss.getKey()) + "%");
                    System.out.println(row);
                }
            }
            summary.forEach(System.out::println);
        }

        private static String gbps(Result r) {
            if (r.stalled != null) {
                return r.runs.isEmpty() ? "stalled" : String.format(Locale.ROOT, "stalled (%.3f before)", r.median());
            }
            return String.format(Locale.ROOT, "%.3f", r.median());
        }

        private void destroyQuietly() {
            try {
                netns("troupe_netns_destroy");
            } catch (Exception e) {
                System.err.println("transport-netns: removing the namespaces failed: " + e.getMessage());
            }
        }

        /** {@code script} run by bash after sourcing netns.sh, its names owned by this JVM's pid. */
        private String netns(String script) throws Exception {
            ProcessBuilder pb = new ProcessBuilder("bash", "-c", "source \"$0\" && " + script, netnsScript.toString())
                .redirectErrorStream(true);
            pb.environment().put("TROUPE_NETNS_OWNER", owner);
            return exec(pb, "netns.sh: " + script);
        }

        private static String cpuModel() {
            String info = readOr("/proc/cpuinfo", "");
            Matcher m = Pattern.compile("model name\\s*:\\s*(.*)").matcher(info);
            String model = m.find() ? m.group(1).trim() : "unknown CPU";
            return model + (info.contains("avx512f") ? ", AVX-512" : ", no AVX-512");
        }
    }

    /** Drops a share of a device's outgoing packets: netem where the kernel has it, else nftables. */
    private record LossTool(String kind, String why) {
        private static final String TABLE = "troupe_bench_loss";

        static LossTool detect(String namespace, String dev) {
            try {
                sh("ip", "netns", "exec", namespace, "tc", "qdisc", "add", "dev", dev, "root", "netem", "loss", "0%");
                sh("ip", "netns", "exec", namespace, "tc", "qdisc", "del", "dev", dev, "root");
                return new LossTool("netem", "tc netem on each namespace's veth (egress)");
            } catch (Exception netem) {
                LossTool nft = new LossTool("nft", "nftables netdev egress rule (numgen random) on each namespace's"
                    + " veth; tc netem is not in this kernel (" + firstLine(netem.getMessage()) + ")");
                try {
                    nft.apply(namespace, dev, 1);
                    nft.clear(namespace, dev);
                    return nft;
                } catch (Exception e) {
                    return new LossTool("none", "neither tc netem (" + firstLine(netem.getMessage())
                        + ") nor nftables (" + firstLine(e.getMessage()) + ") can drop packets here");
                }
            }
        }

        boolean works() {
            return !kind.equals("none");
        }

        String describe() {
            return why;
        }

        void apply(String namespace, String dev, double percent) throws Exception {
            if (kind.equals("netem")) {
                sh("ip", "netns", "exec", namespace, "tc", "qdisc", "replace", "dev", dev, "root", "netem", "loss",
                    pct(percent) + "%");
            } else {
                long threshold = Math.round(percent / 100 * 1_000_000);
                String rules = "table netdev " + TABLE + " {\n  chain out {\n    type filter hook egress device \""
                    + dev + "\" priority 0; policy accept;\n    numgen random mod 1000000 < " + threshold
                    + " counter drop\n  }\n}\n";
                ProcessBuilder pb = new ProcessBuilder("ip", "netns", "exec", namespace, "nft", "-f", "-")
                    .redirectErrorStream(true);
                exec(pb, rules, "nft -f (" + namespace + ")");
            }
        }

        String dropped(String namespace, String dev) {
            try {
                if (kind.equals("netem")) {
                    Matcher m = Pattern.compile("dropped (\\d+)").matcher(sh("ip", "netns", "exec", namespace, "tc",
                        "-s", "qdisc", "show", "dev", dev));
                    return m.find() ? m.group(1) : "?";
                }
                Matcher m = Pattern.compile("packets (\\d+)").matcher(sh("ip", "netns", "exec", namespace, "nft",
                    "list", "table", "netdev", TABLE));
                return m.find() ? m.group(1) : "?";
            } catch (Exception e) {
                return "? (" + firstLine(e.getMessage()) + ")";
            }
        }

        void clear(String namespace, String dev) throws Exception {
            if (kind.equals("netem")) {
                sh("ip", "netns", "exec", namespace, "tc", "qdisc", "del", "dev", dev, "root");
            } else {
                sh("ip", "netns", "exec", namespace, "nft", "delete", "table", "netdev", TABLE);
            }
        }
    }

    private static String sh(String... cmd) throws Exception {
        return exec(new ProcessBuilder(cmd).redirectErrorStream(true), String.join(" ", cmd));
    }

    private static String exec(ProcessBuilder pb, String what) throws Exception {
        return exec(pb, null, what);
    }

    /** Runs {@code pb} (with {@code input} on its stdin), bounded by 60 s; its output, or a failure naming it. */
    private static String exec(ProcessBuilder pb, String input, String what) throws Exception {
        Process p = pb.start();
        try (var stdin = p.getOutputStream()) {
            if (input != null) {
                stdin.write(input.getBytes(StandardCharsets.UTF_8));
            }
        }
        // output is small (a few lines); read it on a thread so that the wait below stays bounded
        String[] out = {""};
        Thread reader = new Thread(() -> {
            try {
                out[0] = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            } catch (IOException e) {
                out[0] = e.toString();
            }
        });
        reader.setDaemon(true);
        reader.start();
        if (!p.waitFor(60, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new IllegalStateException(what + ": still running after 60 s");
        }
        reader.join(5_000);
        if (p.exitValue() != 0) {
            throw new IllegalStateException(what + " failed (" + p.exitValue() + "): " + out[0].trim());
        }
        return out[0];
    }

    private static String readOr(String path, String fallback) {
        try {
            return Files.readString(Path.of(path));
        } catch (IOException e) {
            return fallback;
        }
    }

    private static String firstLine(String s) {
        return s == null ? "" : s.lines().findFirst().orElse("");
    }

    private static String pct(double p) {
        return p == Math.rint(p) ? Long.toString((long) p) : Double.toString(p);
    }

    private static String join(List<Integer> values, String sep) {
        StringBuilder sb = new StringBuilder();
        for (int v : values) {
            sb.append(sb.length() == 0 ? "" : sep).append(v);
        }
        return sb.toString();
    }
}
