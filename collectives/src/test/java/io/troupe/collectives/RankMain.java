package io.troupe.collectives;

import io.troupe.runtime.testkit.LoopbackDriver;
import io.troupe.runtime.transport.TransportEndpoint;
import io.troupe.runtime.transport.TransportNode;
import io.troupe.runtime.transport.TransportSettings;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.zip.CRC32C;
import org.agrona.UnsafeApi;

/**
 * A rank in its own JVM with its own media driver (so peers talk UDP on 127.0.0.1), for
 * {@link MultiProcessCollectivesTest}. Args: {@code rank world mode timeoutMs peerLostMs}. Prints
 * {@code AERONDIR d} and {@code ENDPOINT e}, reads {@code PEERS e0,e1,...} on stdin, then:
 * <ul>
 *   <li>{@code check}: closed-form all-reduces (ring and doubling) of lengths 1, 7, 1000, 2^20+3,
 *   then a seeded random one; prints {@code HASH name crc} per result and {@code OK}</li>
 *   <li>{@code loop}: all-reduces of 2^20 floats until one fails; prints {@code ITER k} and finally
 *   {@code FAILED class epoch missingRank message}</li>
 * </ul>
 */
public final class RankMain {
    private RankMain() {
    }

    public static void main(String[] args) throws Exception {
        int rank = Integer.parseInt(args[0]);
        int world = Integer.parseInt(args[1]);
        String mode = args[2];
        long timeoutNs = TimeUnit.MILLISECONDS.toNanos(Long.parseLong(args[3]));
        long peerLostNs = TimeUnit.MILLISECONDS.toNanos(Long.parseLong(args[4]));
        BufferedReader stdin = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        TransportSettings ts = settings(TimeUnit.NANOSECONDS.toMillis(peerLostNs));
        if (args.length > 5) {
            ts = ts.withExternalDriver(args[5]); // join the parent's driver: IPC, bulk bytes through rings
        }
        try (TransportNode node = TransportNode.launch(ts, Throwable::printStackTrace);
             CollectiveAgent agent = CollectiveAgent.open(node, "rank" + rank, rank, 1, null,
                 Throwable::printStackTrace)) {
            System.out.println("AERONDIR " + node.aeronDir());
            System.out.println("ENDPOINT " + agent.worker().endpoint());
            System.out.flush();
            String[] parts = stdin.readLine().substring("PEERS ".length()).trim().split(",");
            TransportEndpoint[] eps = new TransportEndpoint[world];
            for (int i = 0; i < world; i++) {
                eps[i] = TransportEndpoint.parse(parts[i]);
            }
            CollectiveSettings s = CollectiveSettings.defaults().withTimeoutNs(timeoutNs);
            Communicator ring = agent.communicator(CollectiveGroup.ofWorld(1, 0, rank, eps),
                s.withAlgorithm(CollectiveAlgorithm.RING));
            Communicator doubling = agent.communicator(CollectiveGroup.ofWorld(1, 1, rank, eps),
                s.withAlgorithm(CollectiveAlgorithm.RECURSIVE_DOUBLING));
            if (mode.equals("check")) {
                check(rank, world, ring, doubling);
                System.out.println("OK");
            } else {
                loop(ring);
            }
            System.out.flush();
        }
    }

    /** Test transport settings with small logs (quick to map) and the given peer-lost timeout. */
    static TransportSettings settings(long peerLostMs) {
        return LoopbackDriver.testSettings().withChunkBytes(256 * 1024).withTermLengthBytes(4 * 1024 * 1024)
            .withPeerLostTimeoutNs(TimeUnit.MILLISECONDS.toNanos(peerLostMs));
    }

    static void check(int rank, int world, Communicator ring, Communicator doubling) {
        long[] lengths = {1, 7, 1000, (1 << 20) + 3};
        long max = lengths[lengths.length - 1];
        long raw = UnsafeApi.allocateMemory(max * 4 + 64);
        long buf = (raw + 63) & -64L;
        try {
            for (Communicator c : new Communicator[] {ring, doubling}) {
                for (long len : lengths) {
                    for (long i = 0; i < len; i++) {
                        UnsafeApi.putFloat(buf + 4 * i, (rank + 1) * (1 + i % 3));
                    }
                    c.allReduceAsync(buf, len, ReduceOp.SUM, 0, new CollectiveHandle()).await();
                    float tri = world * (world + 1) / 2f;
                    for (long i = 0; i < len; i++) {
                        float v = UnsafeApi.getFloat(buf + 4 * i);
                        if (v != tri * (1 + i % 3)) {
                            throw new AssertionError(c.settings().algorithm() + " len=" + len + " element " + i + " = "
                                + v + ", want " + tri * (1 + i % 3));
                        }
                    }
                    System.out.println("HASH " + c.settings().algorithm() + "-" + len + " " + crc(buf, len));
                }
                SplittableRandom rnd = new SplittableRandom(rank);
                for (long i = 0; i < 300_001; i++) {
                    UnsafeApi.putFloat(buf + 4 * i, (float) rnd.nextGaussian());
                }
                c.allReduceAsync(buf, 300_001, ReduceOp.AVERAGE, 0, new CollectiveHandle()).await();
                System.out.println("HASH " + c.settings().algorithm() + "-random " + crc(buf, 300_001));
            }
        } finally {
            UnsafeApi.freeMemory(raw);
        }
    }

    static long crc(long address, long count) {
        CRC32C crc = new CRC32C();
        for (long i = 0; i < count; i++) {
            int bits = Float.floatToRawIntBits(UnsafeApi.getFloat(address + 4 * i));
            crc.update(bits);
            crc.update(bits >>> 8);
            crc.update(bits >>> 16);
            crc.update(bits >>> 24);
        }
        return crc.getValue();
    }

    static void loop(Communicator c) {
        long count = 1 << 20;
        long raw = UnsafeApi.allocateMemory(count * 4 + 64);
        long buf = (raw + 63) & -64L;
        CollectiveHandle h = new CollectiveHandle();
        try {
            for (int k = 0; ; k++) {
                c.allReduceAsync(buf, count, ReduceOp.AVERAGE, 0, h).await();
                System.out.println("ITER " + k);
                System.out.flush();
            }
        } catch (CollectiveException e) {
            System.out.println("FAILED " + e.getClass().getSimpleName() + " " + e.epoch() + " " + e.missingRank() + " "
                + e.getMessage().replace('\n', ' '));
        } finally {
            UnsafeApi.freeMemory(raw);
        }
    }
}
