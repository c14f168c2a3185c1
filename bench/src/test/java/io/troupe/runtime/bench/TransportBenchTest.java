package io.troupe.runtime.bench;

import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The bench's per-thread CPU accounting (the bench itself is run by scripts/bench, not by tests). */
class TransportBenchTest {
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
