package io.troupe.actors.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

class CpuByGroupTest {
    @Test
    void shouldGroupThreadsByName() {
        assertEquals("model", CpuByGroup.group("troupe-serve-st"));
        assertEquals("prefill", CpuByGroup.group("troupe-serve-pr"));
        assertEquals("server", CpuByGroup.group("troupe-serve-ev"));
        assertEquals("client", CpuByGroup.group("serve-bench-cli"));
        assertEquals("other", CpuByGroup.group("main"));
    }

    /** On Linux: this thread's busy loop is user time, so its group's kernel share is a fraction well under 1. */
    @Test
    @Timeout(30)
    void shouldReportEachGroupsShareOfCpuInTheKernel() {
        assumeTrue(Files.isDirectory(Path.of("/proc/self/task")), "no /proc/self/task here");
        CpuByGroup c = CpuByGroup.start();
        long x = 0;
        // 0.3 s of this thread's own CPU however scheduled (30 clock ticks at 100 Hz), not 0.3 s of wall time, of
        // which a loaded machine may give it a few ticks only; its CPU time read once a million iterations, as
        // each read is a system call: kernel time
        java.lang.management.ThreadMXBean mx = java.lang.management.ManagementFactory.getThreadMXBean();
        long end = mx.getCurrentThreadCpuTime() + 300_000_000L;
        while (mx.getCurrentThreadCpuTime() < end) {
            for (int i = 0; i < 1_000_000; i++) {
                x += Long.numberOfTrailingZeros(x + end + i);
            }
        }
        String r = c.report();
        assertTrue(x >= 0);
        Matcher m = Pattern.compile("in the kernel \\(share of each group's cpu\\):.* other ([0-9.]+)").matcher(r);
        assertTrue(m.find(), r);
        double share = Double.parseDouble(m.group(1));
        assertTrue(share >= 0 && share < 0.5, "a busy loop runs in user space: " + r);
    }
}
