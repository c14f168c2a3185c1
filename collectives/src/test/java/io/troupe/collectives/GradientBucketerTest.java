package io.troupe.collectives;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.troupe.collectives.LocalGroup.Buffers;
import io.troupe.collectives.bucket.GradientBucketer;
import io.troupe.collectives.bucket.ParamRange;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Buckets in reverse layer order, launched as soon as ready, checked sums; mismatched buckets fail, not hang. */
class GradientBucketerTest {
    /** Ten parameters of 1000..1900 floats laid out back to back, in forward order. */
    static List<ParamRange> params() {
        List<ParamRange> p = new ArrayList<>();
        long off = 0;
        for (int i = 0; i < 10; i++) {
            int numel = 1000 + 100 * i;
            p.add(new ParamRange("p" + i, off, numel));
            off += numel;
        }
        return p;
    }

    static long total(List<ParamRange> p) {
        return p.get(p.size() - 1).endElements();
    }

    @Test
    @Timeout(30)
    void shouldFormBucketsInReverseLayerOrderUnderTheSizeLimit() {
        try (LocalGroup g = new LocalGroup(1)) {
            Communicator c = g.communicators(0, LocalGroup.collectiveSettings())[0];
            List<ParamRange> p = params();
            try (Buffers buf = new Buffers(1, total(p))) {
                GradientBucketer bk = new GradientBucketer(c, buf.address[0], total(p), p, 4 * 4000, ReduceOp.SUM);
                System.out.println(bk);
                // reverse order: p9 (1900) + p8 (1800) = 3700 <= 4000; p7 (1700) alone + p6 (1600) = 3300; ...
                assertEquals(0, bk.bucketOf(9));
                assertEquals(0, bk.bucketOf(8));
                assertEquals(1, bk.bucketOf(7));
                assertEquals(1, bk.bucketOf(6));
                long covered = 0;
                for (int b = 0; b < bk.bucketCount(); b++) {
                    assertTrue(bk.bucketNumel(b) * 4 <= 4 * 4000 || bk.bucketNumel(b) == p.get(0).numel());
                    covered += bk.bucketNumel(b);
                    if (b > 0) {
                        assertEquals(bk.bucketStartElements(b - 1), bk.bucketStartElements(b) + bk.bucketNumel(b),
                            "buckets are adjacent ranges, later layers first");
                    }
                }
                assertEquals(total(p), covered);
            }
        }
    }

    @Test
    @Timeout(60)
    void shouldLaunchEachBucketWhenReadyAndSumGradients() {
        int n = 3;
        List<ParamRange> p = params();
        long total = total(p);
        try (LocalGroup g = new LocalGroup(n); Buffers buf = new Buffers(n, total)) {
            Communicator[] c = g.communicators(0, LocalGroup.collectiveSettings());
            GradientBucketer[] bk = new GradientBucketer[n];
            for (int r = 0; r < n; r++) {
                bk[r] = new GradientBucketer(c[r], buf.address[r], total, p, 4 * 4000, ReduceOp.AVERAGE);
            }
            for (int step = 0; step < 2; step++) {
                for (int r = 0; r < n; r++) {
                    for (long i = 0; i < total; i++) {
                        buf.set(r, i, (r + 1) * (step + 1) * (i % 5));
                    }
                }
                // backward produces the last layers first: mark p9, p8 (bucket 0) only
                for (int r = 0; r < n; r++) {
                    bk[r].markReady(9);
                    bk[r].markReady(8);
                    assertEquals(1, bk[r].launched(), "bucket 0 launched as soon as its gradients are ready");
                }
                CollectiveHandle[] first = new CollectiveHandle[n];
                for (int r = 0; r < n; r++) {
                    first[r] = bk[r].handle(0);
                }
                g.awaitAll(first); // bucket 0 reduced while the "backward" of p0..p7 has not happened yet
                assertEquals(1, bk[0].launched());
                // the rest, out of order: bucket order is kept anyway
                int[] order = {0, 3, 1, 2, 5, 4, 7, 6};
                for (int r = 0; r < n; r++) {
                    for (int i : order) {
                        bk[r].markReady(i);
                    }
                    assertEquals(bk[r].bucketCount(), bk[r].launched());
                }
                awaitEveryBucket(g, bk);
                for (int r = 0; r < n; r++) {
                    bk[r].finish();
                    for (long i = 0; i < total; i++) {
                        float want = 2f * (step + 1) * (i % 5); // mean of (r+1) over 3 ranks = 2
                        if (buf.get(r, i) != want) {
                            fail("step " + step + " rank " + r + " element " + i + " = " + buf.get(r, i) + ", want "
                                + want);
                        }
                    }
                }
            }
        }
    }

    @Test
    @Timeout(60)
    void shouldReportMismatchedBucketsInsteadOfHanging() {
        int n = 2;
        List<ParamRange> p = params();
        long total = total(p);
        try (LocalGroup g = new LocalGroup(n); Buffers buf = new Buffers(n, total)) {
            // a deadline far past the mismatch check's report, so that load cannot make one pass for the other (a
            // wait the deadline ends also reports the mismatch it holds, so only the time tells them apart)
            long deadlineMs = 30_000;
            Communicator[] c = g.communicators(0, LocalGroup.collectiveSettings().withTimeoutNs(
                TimeUnit.MILLISECONDS.toNanos(deadlineMs)));
            // rank 1 is configured with another bucket size: its bucket 0 differs
            GradientBucketer b0 = new GradientBucketer(c[0], buf.address[0], total, p, 4 * 4000, ReduceOp.SUM);
            GradientBucketer b1 = new GradientBucketer(c[1], buf.address[1], total, p, 4 * 2000, ReduceOp.SUM);
            long t0 = System.nanoTime();
            for (int i = p.size() - 1; i >= 0; i--) {
                b0.markReady(i);
                b1.markReady(i);
            }
            CollectiveException e = assertThrows(CollectiveException.class,
                () -> g.awaitAll(b0.handle(0), b1.handle(0)));
            long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
            System.out.println("mismatch reported after " + ms + " ms: " + e.getMessage());
            assertInstanceOf(CollectiveMismatchException.class, e);
            assertTrue(e.getMessage().contains("tag=0"), e.getMessage());
            assertTrue(b0.handle(0).isFailed() && b1.handle(0).isFailed(), "both ranks see the mismatch");
            assertTrue(ms < deadlineMs, "reported when the mismatched piece arrived, not when the " + deadlineMs
                + " ms deadline ended the wait: " + ms + " ms");
        }
    }

    /**
     * Reduce-scatter mode (ZeRO): each member ends with the sum of its segment of every bucket, its
     * owned ranges tile the buffer across members, and the all-gather gives everyone every member's
     * segments of another buffer of the same layout.
     */
    @Test
    @Timeout(60)
    void shouldReduceScatterBucketsAndAllGatherOwnedSegments() {
        int n = 3;
        List<ParamRange> p = params();
        long total = total(p);
        try (LocalGroup g = new LocalGroup(n); Buffers grads = new Buffers(n, total);
             Buffers params = new Buffers(n, total)) {
            Communicator[] c = g.communicators(0, LocalGroup.collectiveSettings());
            GradientBucketer[] bk = new GradientBucketer[n];
            for (int r = 0; r < n; r++) {
                bk[r] = new GradientBucketer(c[r], grads.address[r], total, p, 4 * 4000, ReduceOp.SUM, true, 0);
                for (long i = 0; i < total; i++) {
                    grads.set(r, i, (r + 1) * (i % 7));
                    params.set(r, i, -1);
                }
            }
            for (int r = 0; r < n; r++) {
                for (int i = 0; i < p.size(); i++) {
                    bk[r].markReady(i);
                }
            }
            awaitEveryBucket(g, bk);
            long[] ownerOf = new long[(int) total];
            java.util.Arrays.fill(ownerOf, -1);
            for (int r = 0; r < n; r++) {
                bk[r].finish();
                long[] starts = bk[r].ownedStarts();
                long[] numels = bk[r].ownedNumels();
                for (int k = 0; k < starts.length; k++) {
                    assertTrue(k == 0 || starts[k] > starts[k - 1], "ascending");
                    for (long i = starts[k]; i < starts[k] + numels[k]; i++) {
                        assertEquals(-1, ownerOf[(int) i], "element " + i + " owned twice");
                        ownerOf[(int) i] = r;
                        assertEquals(6f * (i % 7), grads.get(r, i), "rank " + r + " element " + i); // 1+2+3
                        params.set(r, i, 100 * r + (i % 11));
                    }
                }
            }
            for (long o : ownerOf) {
                assertTrue(o >= 0, "every element owned");
            }
            for (int r = 0; r < n; r++) {
                bk[r].startAllGather(params.address[r]);
            }
            CollectiveHandle[] gathers = new CollectiveHandle[n * bk[0].bucketCount()];
            for (int r = 0; r < n; r++) {
                for (int b = 0; b < bk[r].bucketCount(); b++) {
                    gathers[r * bk[r].bucketCount() + b] = bk[r].gatherHandle(b);
                }
            }
            g.awaitAll(gathers);
            for (int r = 0; r < n; r++) {
                bk[r].finishAllGather();
                for (long i = 0; i < total; i++) {
                    if (params.get(r, i) != 100 * ownerOf[(int) i] + (i % 11)) {
                        fail("rank " + r + " element " + i + " = " + params.get(r, i) + ", owner " + ownerOf[(int) i]);
                    }
                }
            }
        }
    }

    /**
     * Reduce-scatter mode (ZeRO) with bf16 on the wire: each member's owned segments hold the sums
     * within bf16's rounding, and the reduce-scatter sends half of float32's bytes.
     */
    @Test
    @Timeout(60)
    void shouldReduceScatterInBf16WithHalfTheBytes() {
        int n = 2;
        List<ParamRange> p = params();
        long total = total(p);
        long[] sent = new long[2];
        Compression[] formats = {Compression.NONE, Compression.BF16};
        for (int f = 0; f < formats.length; f++) {
            try (LocalGroup g = new LocalGroup(n); Buffers buf = new Buffers(n, total)) {
                Communicator[] c = g.communicators(0, LocalGroup.collectiveSettings().withCompression(formats[f]));
                GradientBucketer[] bk = reduceSines(g, buf, total, p,
                    r -> new GradientBucketer(c[r], buf.address[r], total, p, 4 * 4000, ReduceOp.SUM, true, 0));
                double worst = 0;
                for (int r = 0; r < n; r++) {
                    bk[r].finish();
                    long[] starts = bk[r].ownedStarts();
                    long[] numels = bk[r].ownedNumels();
                    for (int k = 0; k < starts.length; k++) {
                        for (long i = starts[k]; i < starts[k] + numels[k]; i++) {
                            double want = Math.sin(0.01 * i) + Math.sin(0.01 * i + 1);
                            worst = Math.max(worst, Math.abs(buf.get(r, i) - want));
                        }
                    }
                }
                sent[f] = c[0].sentBytes();
                System.out.printf("reduce-scatter %s: member 0 sent %d bytes for %d gradient floats, max abs error "
                    + "%.2e%n", formats[f], sent[f], total, worst);
                assertTrue(worst < (f == 0 ? 1e-6 : 0.01), formats[f] + " error " + worst);
            }
        }
        double ratio = (double) sent[1] / sent[0];
        System.out.printf("reduce-scatter wire ratio bf16/float32: %.3f%n", ratio);
        assertTrue(ratio <= 0.51, "bf16 reduce-scatter ratio " + ratio);
    }

    /**
     * The bytes a member puts on the wire for one step's gradient buckets: int8 with error feedback
     * sends at most 0.27x of float32 (an int8 per element plus a float32 scale per 256), bf16 half;
     * each member's sum is the float32 one within the codec's error.
     */
    @Test
    @Timeout(60)
    void shouldSendAQuarterOfTheBytesUnderInt8ErrorFeedback() {
        int n = 2;
        List<ParamRange> p = params();
        long total = total(p);
        long[] sent = new long[3];
        Compression[] formats = {Compression.NONE, Compression.BF16, Compression.INT8_ERROR_FEEDBACK};
        for (int f = 0; f < formats.length; f++) {
            try (LocalGroup g = new LocalGroup(n); Buffers buf = new Buffers(n, total)) {
                Communicator[] c = g.communicators(0, LocalGroup.collectiveSettings().withCompression(formats[f]));
                GradientBucketer[] bk = reduceSines(g, buf, total, p,
                    r -> new GradientBucketer(c[r], buf.address[r], total, p, 4 * 4000, ReduceOp.SUM));
                for (int r = 0; r < n; r++) {
                    bk[r].finish();
                }
                sent[f] = c[0].sentBytes();
                double worst = 0;
                for (long i = 0; i < total; i++) {
                    double want = Math.sin(0.01 * i) + Math.sin(0.01 * i + 1);
                    worst = Math.max(worst, Math.abs(buf.get(0, i) - want));
                }
                System.out.printf("%s: member 0 sent %d bytes for %d gradient floats, max abs error %.2e%n", formats[f],
                    sent[f], total, worst);
                assertTrue(worst < (f == 0 ? 1e-6 : 0.03), formats[f] + " error " + worst);
            }
        }
        double int8Ratio = (double) sent[2] / sent[0];
        double bf16Ratio = (double) sent[1] / sent[0];
        System.out.printf("wire ratio against float32: bf16 %.3f, int8-ef %.3f%n", bf16Ratio, int8Ratio);
        assertTrue(int8Ratio <= 0.27, "int8-ef ratio " + int8Ratio);
        assertTrue(bf16Ratio <= 0.51, "bf16 ratio " + bf16Ratio);
    }

    /**
     * Makes each member's bucketer ({@code make} of its rank), fills member r's gradients with
     * sin(0.01 i + r), marks every parameter ready and waits for every bucket of every member.
     */
    private static GradientBucketer[] reduceSines(LocalGroup g, Buffers buf, long total, List<ParamRange> p,
                                                  java.util.function.IntFunction<GradientBucketer> make) {
        int n = buf.address.length;
        GradientBucketer[] bk = new GradientBucketer[n];
        for (int r = 0; r < n; r++) {
            bk[r] = make.apply(r);
            for (long i = 0; i < total; i++) {
                buf.set(r, i, (float) Math.sin(0.01 * i + r));
            }
            for (int i = 0; i < p.size(); i++) {
                bk[r].markReady(i);
            }
        }
        awaitEveryBucket(g, bk);
        return bk;
    }

    /** Waits for every bucket of every member's bucketer. */
    private static void awaitEveryBucket(LocalGroup g, GradientBucketer[] bk) {
        CollectiveHandle[] all = new CollectiveHandle[bk.length * bk[0].bucketCount()];
        for (int r = 0; r < bk.length; r++) {
            for (int b = 0; b < bk[r].bucketCount(); b++) {
                all[r * bk[r].bucketCount() + b] = bk[r].handle(b);
            }
        }
        g.awaitAll(all);
    }
}
