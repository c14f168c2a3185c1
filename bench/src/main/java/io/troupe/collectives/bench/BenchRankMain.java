package io.troupe.collectives.bench;

import io.troupe.collectives.CollectiveAgent;
import io.troupe.collectives.CollectiveAlgorithm;
import io.troupe.collectives.CollectiveGroup;
import io.troupe.collectives.CollectiveHandle;
import io.troupe.collectives.CollectiveSettings;
import io.troupe.collectives.Communicator;
import io.troupe.collectives.ReduceOp;
import io.troupe.runtime.transport.TransportEndpoint;
import io.troupe.runtime.transport.TransportNode;
import io.troupe.runtime.transport.TransportSettings;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.SplittableRandom;
import org.agrona.UnsafeApi;

/**
 * One rank of {@link CollectivesBench}: args {@code rank world aeronDir|- sizesBytes(comma) crc(on|off|default)
 * pipelineBytes [termBytes [inPlace(on|off)]]}. With an aeron dir it joins that (external) driver and talks IPC; with
 * {@code -} it
 * embeds its own driver and talks UDP on 127.0.0.1. Prints {@code ENDPOINT e}, reads
 * {@code PEERS e0,e1,...}, then for every size and algorithm prints
 * {@code RESULT algorithm bytes avgNs} (the best of {@link #BATCHES} batch means), then {@code DONE}.
 */
public final class BenchRankMain {
    /** Timed batches per size; the best batch mean is reported (the machine is shared). */
    static final int BATCHES = 5;

    private BenchRankMain() {
    }

    public static void main(String[] args) throws Exception {
        int rank = Integer.parseInt(args[0]);
        int world = Integer.parseInt(args[1]);
        String dir = args[2];
        String[] sizes = args[3].split(",");
        // default: the data plane's own choice (CRC on UDP, off on IPC); on/off: forced on both channels
        String crcArg = args[4];
        int pipelineBytes = Integer.parseInt(args[5]);
        int termBytes = args.length > 6 ? Integer.parseInt(args[6]) : 64 * 1024 * 1024;
        TransportSettings ts = TransportSettings.defaults()
            .withChunkBytes(Math.min(1024 * 1024, termBytes / 16)).withTermLengthBytes(termBytes)
            .withReceiveBudgetBytes(512L * 1024 * 1024);
        if (!crcArg.equals("default")) {
            ts = ts.withCrcEnabled(crcArg.equals("on")).withIpcCrcEnabled(crcArg.equals("on"));
        }
        if (!dir.equals("-")) {
            ts = ts.withExternalDriver(dir);
        }
        BufferedReader stdin = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        try (TransportNode node = TransportNode.launch(ts, Throwable::printStackTrace);
             CollectiveAgent agent = CollectiveAgent.open(node, "bench" + rank, rank, 1, null,
                 Throwable::printStackTrace)) {
            if (args.length > 7 && args[7].equals("off")) {
                // every piece through a receive slot (the reference path)
                agent.worker().receiver().inPlaceConsumer(null);
            }
            System.out.println("ENDPOINT " + agent.worker().endpoint());
            System.out.flush();
            String peers = stdin.readLine();
            String[] parts = peers.substring("PEERS ".length()).trim().split(",");
            TransportEndpoint[] eps = new TransportEndpoint[world];
            for (int i = 0; i < world; i++) {
                eps[i] = TransportEndpoint.parse(parts[i]);
            }
            CollectiveSettings base = CollectiveSettings.defaults().withPipelineBytes(pipelineBytes);
            CollectiveAlgorithm[] algorithms = {CollectiveAlgorithm.RING, CollectiveAlgorithm.RECURSIVE_DOUBLING};
            Communicator[] comms = new Communicator[algorithms.length];
            for (int a = 0; a < algorithms.length; a++) {
                comms[a] = agent.communicator(CollectiveGroup.ofWorld(1, a, rank, eps),
                    base.withAlgorithm(algorithms[a]));
            }
            long maxBytes = 0;
            for (String s : sizes) {
                maxBytes = Math.max(maxBytes, Long.parseLong(s));
            }
            long raw = UnsafeApi.allocateMemory(maxBytes + 64);
            long buf = (raw + 63) & -64L;
            SplittableRandom random = new SplittableRandom(rank);
            for (long i = 0; i < maxBytes / 4; i++) {
                UnsafeApi.putFloat(buf + 4 * i, (float) random.nextDouble(-1, 1));
            }
            CollectiveHandle h = new CollectiveHandle();
            comms[0].barrier();
            for (String s : sizes) {
                long bytes = Long.parseLong(s);
                long count = bytes / 4;
                for (int a = 0; a < algorithms.length; a++) {
                    if (algorithms[a] == CollectiveAlgorithm.RECURSIVE_DOUBLING && bytes > 4L * 1024 * 1024) {
                        continue;
                    }
                    Communicator c = comms[a];
                    int iters = (int) Math.max(8, Math.min(1000, (256L << 20) / bytes));
                    // warm-up: ~4 GiB reduced per size (at least 8, at most 2000 collectives, ~2-3 s at the
                    // large sizes), so the JIT has compiled the duty cycle before the timing starts: after 8
                    // x 64 MiB, and still after 16, C2 took 10-30% of the CPU in the timed part
                    int warm = (int) Math.max(8, Math.min(2000, (4L << 30) / bytes));
                    for (int i = 0; i < warm; i++) {
                        c.allReduceAsync(buf, count, ReduceOp.AVERAGE, 0, h).await();
                    }
                    long avg = Long.MAX_VALUE;
                    for (int batch = 0; batch < BATCHES; batch++) {
                        c.barrier();
                        long t0 = System.nanoTime();
                        for (int i = 0; i < iters; i++) {
                            c.allReduceAsync(buf, count, ReduceOp.AVERAGE, 0, h).await();
                        }
                        avg = Math.min(avg, (System.nanoTime() - t0) / iters);
                    }
                    c.barrier();
                    System.out.println("FORWARDED " + algorithms[a] + " " + bytes + " " + c.forwardedPieces());
                    System.out.println("RESULT " + algorithms[a] + " " + bytes + " " + avg);
                    System.out.flush();
                }
            }
            comms[0].barrier();
            System.out.println("DONE");
            System.out.flush();
            UnsafeApi.freeMemory(raw);
            stdin.readLine(); // the parent says BYE once every rank is done, so nobody closes early
        }
    }
}
