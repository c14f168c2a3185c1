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
        long end = System.nanoTime() + 300_000_000L;        // 0.3 s of CPU: 30 clock ticks at 100 Hz
        while (System.nanoTime() < end) {
            x += Long.numberOfTrailingZeros(x + end);
        }
        String r = c.report();
        assertTrue(x >= 0);
        Matcher m = Pattern.compile("in the kernel \\(share of each group's cpu\\):.* other ([0-9.]+)").matcher(r);
        assertTrue(m.find(), r);
        double share = Double.parseDouble(m.group(1));
        assertTrue(share >= 0 && share < 0.5, "a busy loop runs in user space: " + r);
    }
}
