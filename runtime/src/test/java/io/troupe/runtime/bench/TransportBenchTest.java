package io.troupe.runtime.bench;

import static org.junit.jupiter.api.Assertions.*;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The bench's option parsing and its median (the bench itself is run by scripts/bench, not by tests). */
class TransportBenchTest {
    @Test
    void shouldParseSizesAndNameTheBadOne() {
        assertEquals(65504, TransportBench.parseBytes("65504"));
        assertEquals(64 * 1024, TransportBench.parseBytes("64k"));
        assertEquals(4L << 20, TransportBench.parseBytes("4M"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> TransportBench.parseBytes("4q"))
            .getMessage().contains("4q"));
    }

    @Test
    void shouldTakeTheMedianOfOddAndEvenCountsWithoutReorderingTheRuns() {
        double[] runs = {3.0, 1.0, 2.0};
        assertEquals(2.0, TransportBench.median(runs));
        assertArrayEquals(new double[] {3.0, 1.0, 2.0}, runs);
        assertEquals(2.5, TransportBench.median(new double[] {4.0, 1.0, 3.0, 2.0}));
    }

    /** Live threads only: the bench's threads (driver, receiver) are alive when it asks. */
    @Test
    @Timeout(30)
    void shouldNameTheThreadThatUsedTheCpuFirst() throws Exception {
        java.util.concurrent.CountDownLatch spun = new java.util.concurrent.CountDownLatch(1);
        java.util.concurrent.CountDownLatch done = new java.util.concurrent.CountDownLatch(1);
        ThreadCpu cpu = ThreadCpu.start();
        Thread spinner = new Thread(() -> {
            java.lang.management.ThreadMXBean mx = java.lang.management.ManagementFactory.getThreadMXBean();
            long until = mx.getCurrentThreadCpuTime() + 300_000_000L; // 300 ms of its own CPU, however scheduled
            long x = 0;
            while (mx.getCurrentThreadCpuTime() < until) {
                x += System.nanoTime() & 1;
            }
            spun.countDown();
            try {
                done.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            if (x == -1) {
                System.out.println(x);
            }
        }, "spinner");
        spinner.start();
        spun.await();
        String busy = cpu.busiest(3);
        done.countDown();
        spinner.join();
        assertTrue(busy.startsWith("spinner "), busy);
        assertTrue(busy.contains("minor page faults"), busy);
        assertTrue(ThreadCpu.minorFaults() >= 0, "readable on Linux");
    }
}
