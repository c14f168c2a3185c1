package io.troupe.collectives.bench;

import io.troupe.actors.cli.Options;
import io.troupe.bench.BenchOptions;
import io.troupe.bench.ByteSize;
import io.troupe.runtime.launch.ChildJvm;
import io.troupe.runtime.transport.TransportNode;
import io.troupe.runtime.transport.TransportSettings;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * All-reduce benchmark, nccl-tests style: {@code scripts/bench collectives [--world N] [--sizes 4k,1m,16m,64m]
 * [--transport ipc|udp] [--crc on|off|default] [--pipeline 512k] [--term 64m] [--in-place on|off]}. Ranks are separate
 * JVMs on this machine
 * ({@link BenchRankMain}); with {@code ipc} (default) they share one media driver that this process
 * embeds, as workers of one node do; with {@code udp} each has its own driver and they talk over
 * 127.0.0.1. For each size it prints the ring and recursive-doubling times, the time of the default
 * choice ({@code smallMaxBytes} crossover), algbw = bytes/time, busbw = algbw * 2(n-1)/n, and the
 * ratio to PyTorch 1.13 Gloo figures measured on this machine (issue 4). The last line is
 * {@code world=<n> allreduce_4k_us=<x> busbw_1m_gbps=<x> busbw_16m_gbps=<x> busbw_64m_gbps=<x>}.
 */
public final class CollectivesBench {
    private static final long KIB = 1024;
    private static final long MIB = 1024 * 1024;
    /** How long a rank may take to start and print its endpoint. */
    private static final long START_TIMEOUT_MS = 120_000;
    /** How long a rank may take for all sizes and algorithms of one world size. */
    private static final long RUN_TIMEOUT_MS = 3_600_000;

    private CollectivesBench() {
    }

    /** Gloo (PyTorch 1.13) on this machine, from issue 4: {world, bytes} -> microseconds or busbw GB/s. */
    private static Double glooUs(int world, long bytes) {
        if (world == 2 && bytes == 4 * KIB) {
            return 274.0;
        }
        if (world == 4 && bytes == 4 * KIB) {
            return 5000.0;
        }
        return null;
    }

    private static Double glooBusbw(int world, long bytes) {
        if (world == 2 && bytes == MIB) {
            return 1.96;
        }
        if (world == 2 && bytes == 64 * MIB) {
            return 1.60;
        }
        if (world == 4 && bytes == 64 * MIB) {
            return 1.07;
        }
        return null;
    }

    /** A message size: {@link ByteSize} syntax, a positive multiple of 4 bytes (whole FP32 elements). */
    static long parseSize(String s) {
        long v = ByteSize.parse(s);
        if (v < 4 || v % 4 != 0) {
            throw new IllegalArgumentException("size must be a positive multiple of 4 bytes: size=" + s);
        }
        return v;
    }

    public static void main(String[] args) throws Exception {
        List<Integer> worlds = new ArrayList<>(List.of(2, 4));
        String sizesArg = "4k,16k,64k,256k,1m,4m,16m,64m";
        String transport = "ipc";
        String crc = "default";
        long pipeline = 512 * KIB;
        // the ranks' publication term: Aeron's IPC flow-control window is term/2, and a window that holds a
        // whole ring step of a 64 MiB all-reduce (32 MiB at world 2) keeps the driver conductor, which
        // moves the window, off the ring's critical path (measured: docs/bench-collectives.md)
        long term = 64 * MIB;
        String inPlace = "on";
        Options o = BenchOptions.parse(args, "collectives",
            "usage: scripts/bench collectives [--world N] [--sizes 4k,1m,..] [--transport ipc|udp]"
                + " [--crc on|off|default] [--pipeline 512k] [--term 64m] [--in-place on|off]",
            Set.of("world", "sizes", "transport", "crc", "pipeline", "in-place", "term"), Set.of());
        if (o.has("world")) {
            worlds = List.of(o.getInt("world", 2));
        }
        sizesArg = o.get("sizes", sizesArg);
        transport = o.get("transport", transport);
        crc = o.get("crc", crc);
        pipeline = o.has("pipeline") ? parseSize(o.get("pipeline")) : pipeline;
        inPlace = o.get("in-place", inPlace);
        term = o.has("term") ? parseSize(o.get("term")) : term;
        if (!transport.equals("ipc") && !transport.equals("udp")) {
            throw new IllegalArgumentException("--transport must be ipc or udp: transport=" + transport);
        }
        List<Long> sizes = new ArrayList<>();
        StringBuilder sizeList = new StringBuilder();
        for (String s : sizesArg.split(",")) {
            long b = parseSize(s);
            sizes.add(b);
            sizeList.append(sizeList.length() == 0 ? "" : ",").append(b);
        }
        System.out.printf("# collectives bench: all-reduce (average) of float32, transport=%s, crc=%s, pipeline=%d KiB,"
            + " term=%d MiB, in-place=%s, cores=%d, load=%s%n", transport, crc, pipeline / KIB, term / MIB, inPlace,
                Runtime.getRuntime().availableProcessors(),
            loadAverage());
        String last = null;
        for (int world : worlds) {
            last = runWorld(world, sizes, sizeList.toString(), transport, crc, pipeline, term, inPlace);
        }
        System.out.println(last);
    }

    private static String loadAverage() {
        try {
            return java.nio.file.Files.readString(java.nio.file.Path.of("/proc/loadavg")).trim();
        } catch (Exception e) {
            return "n/a";
        }
    }

    private static String runWorld(int world, List<Long> sizes, String sizeList, String transport, String crc,
                                   long pipeline, long term, String inPlace) throws Exception {
        TransportSettings ts = TransportSettings.defaults().withTermLengthBytes(32 * 1024 * 1024);
        Map<String, Long> worst = new HashMap<>();
        try (TransportNode driverHost = transport.equals("ipc") ? TransportNode.launch(ts, Throwable::printStackTrace)
            : null) {
            String dir = driverHost == null ? "-" : driverHost.aeronDir();
            List<ChildJvm> ranks = new ArrayList<>();
            try {
                for (int r = 0; r < world; r++) {
                    ranks.add(ChildJvm.start(BenchRankMain.class, List.of("-Xmx1g", "-XX:+UseParallelGC"),
                        List.of(Integer.toString(r), Integer.toString(world), dir, sizeList, crc,
                            Long.toString(pipeline),
                            Long.toString(term), inPlace)));
                }
                StringBuilder peers = new StringBuilder("PEERS ");
                for (int r = 0; r < world; r++) {
                    peers.append(r == 0 ? "" : ",")
                        .append(ranks.get(r).awaitLine("ENDPOINT ", START_TIMEOUT_MS).substring("ENDPOINT ".length()));
                }
                for (ChildJvm p : ranks) {
                    p.send(peers.toString());
                }
                for (ChildJvm p : ranks) {
                    p.awaitLine("DONE", RUN_TIMEOUT_MS);
                    for (String line : p.output().split("\n")) {
                        if (line.startsWith("RESULT ")) {
                            String[] f = line.substring(7).trim().split(" ");
                            worst.merge(f[0] + " " + f[1], Long.parseLong(f[2]), Math::max);
                        } else if (line.startsWith("FORWARDED ") && System.getenv("TROUPE_BENCH_VERBOSE") != null) {
                            System.out.println("# " + line.trim().toLowerCase(Locale.ROOT)
                                + " (running total of one rank)");
                        } else if (!line.isBlank() && !line.startsWith("ENDPOINT ") && !line.startsWith("FORWARDED ")
                            && !line.startsWith("DONE")) {
                            System.err.println("[rank process " + p.pid() + "] " + line);
                        }
                    }
                }
                for (ChildJvm p : ranks) {
                    p.send("BYE");
                }
                for (ChildJvm p : ranks) {
                    p.waitFor(30_000);
                }
            } finally {
                for (ChildJvm p : ranks) {
                    p.close();
                }
            }
        }
        return printTable(world, sizes, worst);
    }

    private static String printTable(int world, List<Long> sizes, Map<String, Long> worst) {
        long crossover = io.troupe.collectives.CollectiveSettings.DEFAULT_SMALL_MAX_BYTES;
        System.out.printf("%n# world=%d (time = slowest rank's best-of-" + BenchRankMain.BATCHES
            + " batch mean; default = doubling up to %d KiB, ring above)%n",
            world, crossover / KIB);
        System.out.printf("%10s %12s %12s %12s %10s %10s %14s%n", "size", "ring_us", "doubling_us", "default_us",
            "algbw_GB/s", "busbw_GB/s", "vs_gloo");
        double us4k = Double.NaN;
        double bus1m = Double.NaN;
        double bus16m = Double.NaN;
        double bus64m = Double.NaN;
        for (long b : sizes) {
            Long ring = worst.get("RING " + b);
            Long rd = worst.get("RECURSIVE_DOUBLING " + b);
            Long def = b <= crossover ? rd : ring;
            if (def == null) {
                def = ring;
            }
            double us = def / 1000.0;
            double algbw = b / (def / 1e9) / 1e9;
            double busbw = algbw * 2 * (world - 1) / world;
            String vs = "";
            Double gu = glooUs(world, b);
            Double gb = glooBusbw(world, b);
            if (gu != null) {
                vs = String.format(Locale.ROOT, "%.1fx faster", gu / us);
            } else if (gb != null) {
                vs = String.format(Locale.ROOT, "%.2fx busbw", busbw / gb);
            }
            System.out.printf(Locale.ROOT, "%10s %12s %12s %12.1f %10.3f %10.3f %14s%n", human(b),
                ring == null ? "-" : String.format(Locale.ROOT, "%.1f", ring / 1000.0),
                rd == null ? "-" : String.format(Locale.ROOT, "%.1f", rd / 1000.0), us, algbw, busbw, vs);
            if (b == 4 * KIB) {
                us4k = us;
            } else if (b == MIB) {
                bus1m = busbw;
            } else if (b == 16 * MIB) {
                bus16m = busbw;
            } else if (b == 64 * MIB) {
                bus64m = busbw;
            }
        }
        return String.format(Locale.ROOT, "world=%d allreduce_4k_us=%.1f busbw_1m_gbps=%.3f busbw_16m_gbps=%.3f"
            + " busbw_64m_gbps=%.3f", world, us4k, bus1m, bus16m, bus64m);
    }

    private static String human(long b) {
        if (b >= MIB && b % MIB == 0) {
            return b / MIB + " MiB";
        }
        if (b >= KIB && b % KIB == 0) {
            return b / KIB + " KiB";
        }
        return b + " B";
    }
}
