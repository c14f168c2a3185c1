package io.troupe.runtime.bench;

import io.aeron.driver.ThreadingMode;
import io.troupe.actors.cli.Options;
import io.troupe.bench.BenchOptions;
import io.troupe.bench.ByteSize;
import io.troupe.bench.Median;
import io.troupe.runtime.transport.Crc32cCalculator;
import io.troupe.runtime.transport.FrameAuthKey;
import io.troupe.runtime.transport.FrameMac;
import io.troupe.runtime.transport.TransportNode;
import io.troupe.runtime.transport.TransportSettings;
import java.util.Locale;
import java.util.Set;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import org.agrona.UnsafeApi;

/**
 * The cost of {@code troupe.transport.auth-key}: first the bare kernels over 1 MiB (CRC32C, which a
 * tagged frame no longer computes; SipHash-2-4 as {@link FrameMac} runs it; HMAC-SHA-256 through the JDK,
 * for the choice), then tensor throughput over UDP loopback with CRC32C (the default, the baseline) and
 * with every frame tagged, alternating in the same run, and their ratio.
 *
 * <p>Options: {@code --size} tensor bytes (default 16m), {@code --rounds} alternations (default 3),
 * {@code --runs} timed runs per measurement (default 5), {@code --warm} bytes sent before timing (default
 * 512m), {@code --chunk} (default 1m, the data plane's default); {@code --help}.
 */
public final class FrameMacBench {
    private static final int MIB = 1024 * 1024;

    private FrameMacBench() {
    }

    public static void main(String[] args) throws Exception {
        Options o = BenchOptions.parse(args, "auth",
            "usage: scripts/bench auth [--size BYTES] [--rounds N] [--runs N] [--warm BYTES] [--chunk BYTES]"
                + " (sizes as 65504, 64k, 4m)", Set.of("size", "rounds", "runs", "warm", "chunk"), Set.of());
        long size = ByteSize.parse(o.get("size", "16m"));
        int rounds = o.getInt("rounds", 3);
        int runs = o.getInt("runs", 5);
        long warm = ByteSize.parse(o.get("warm", "512m"));
        long chunk = ByteSize.parse(o.get("chunk", "1m"));
        kernels();
        TransportSettings crc = TransportSettings.defaults()
            .withThreadingMode(TransportBench.MULTI_HOST_MODE)
            .withTermLengthBytes(64 * MIB)
            .withChunkBytes((int) chunk)
            .withReceiveBudgetBytes(512L * MIB);
        TransportSettings tagged = crc.withAuthKey(FrameAuthKey.ofValue("a benchmark key, 16+ bytes"));
        double[] crcGbps = new double[rounds];
        double[] macGbps = new double[rounds];
        for (int r = 0; r < rounds; r++) {
            crcGbps[r] = udp(crc, (int) size, runs, warm);
            macGbps[r] = udp(tagged, (int) size, runs, warm);
            System.out.printf(Locale.ROOT, "round %d: udp %d MiB, CRC32C %.2f GB/s, tagged %.2f GB/s (x%.3f)%n", r + 1,
                size / MIB, crcGbps[r], macGbps[r], macGbps[r] / crcGbps[r]);
        }
        double c = Median.of(crcGbps);
        double m = Median.of(macGbps);
        System.out.printf(Locale.ROOT, "udp_crc_gbps=%.2f udp_mac_gbps=%.2f mac_ratio=%.3f mode=%s chunk=%d%n", c, m,
            m / c, ThreadingMode.SHARED_NETWORK, chunk);
    }

    private static double udp(TransportSettings s, int bytes, int runs, long warm) {
        try (TransportNode node = TransportNode.launch(s, Throwable::printStackTrace)) {
            return TransportBench.throughputGbps(node, true, bytes, runs, warm);
        }
    }

    /** GB/s of each kernel over the same 1 MiB, best of 5 timed passes of 256 MiB after a warm-up. */
    private static void kernels() throws Exception {
        int n = MIB;
        long address = UnsafeApi.allocateMemory(n);
        byte[] heap = new byte[n];
        try {
            for (int i = 0; i < n; i++) {
                UnsafeApi.putByte(address + i, (byte) (i * 31));
                heap[i] = (byte) (i * 31);
            }
            Crc32cCalculator crc = new Crc32cCalculator();
            FrameMac sip = new FrameMac(FrameAuthKey.ofValue("a benchmark key, 16+ bytes"));
            org.agrona.concurrent.UnsafeBuffer header = new org.agrona.concurrent.UnsafeBuffer(new byte[96]);
            Mac hmac = Mac.getInstance("HmacSHA256");
            hmac.init(new SecretKeySpec(new byte[32], "HmacSHA256"));
            long[] sink = new long[1];
            double crcGbps = best(n, () -> sink[0] += crc.compute(address, n));
            double sipGbps = best(n, () -> {
                sip.absorbHeader(header, 0);
                sink[0] += sip.finish(null, address, n);
            });
            double hmacGbps = best(n, () -> {
                // the JDK's Mac reads heap arrays; direct memory would be copied into one first
                hmac.update(heap, 0, n);
                sink[0] += hmac.doFinal()[0];
            });
            System.out.printf(Locale.ROOT, "kernels over 1 MiB: CRC32C %.2f GB/s, SipHash-2-4 %.2f GB/s"
                + " (x%.3f of CRC32C), HMAC-SHA-256 (JDK) %.2f GB/s (x%.3f of SipHash)%n", crcGbps, sipGbps,
                sipGbps / crcGbps, hmacGbps, hmacGbps / sipGbps);
            System.out.printf(Locale.ROOT, "crc32c_gbps=%.2f siphash_gbps=%.2f hmac_sha256_gbps=%.2f (%d)%n", crcGbps,
                sipGbps, hmacGbps, sink[0] & 1);
        } finally {
            UnsafeApi.freeMemory(address);
        }
    }

    private static double best(int bytes, Runnable pass) {
        int perRun = 256 * MIB / bytes;
        for (int i = 0; i < perRun * 2; i++) {
            pass.run();
        }
        double best = 0;
        for (int r = 0; r < 5; r++) {
            long t0 = System.nanoTime();
            for (int i = 0; i < perRun; i++) {
                pass.run();
            }
            best = Math.max(best, (double) perRun * bytes / (System.nanoTime() - t0));
        }
        return best;
    }
}
