package io.troupe.actors.serve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.runtime.launch.ChildJvm;
import java.util.BitSet;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A real server with the decode step thread isolated, in a process of its own ({@link CoreIsolationProbe}:
 * pinning moves every thread of a process, and this JVM runs other tests). The kernel's view of each
 * thread's CPUs ({@code Cpus_allowed_list} in /proc) shows the step thread alone on the process's last
 * CPU and the other threads off it, and every thread has all its CPUs back once the server closed.
 * Skipped (with the reason) off Linux or with fewer than two CPUs.
 */
@Timeout(120)
class CoreIsolationTest {
    @Test
    void shouldRunTheStepThreadAloneOnTheLastCpuAndGiveTheCpusBackOnClose() throws Exception {
        Assumptions.assumeTrue(System.getProperty("os.name", "").toLowerCase(Locale.ROOT).contains("linux"),
            "thread affinity is set on Linux only");
        Assumptions.assumeTrue(Runtime.getRuntime().availableProcessors() >= 2, "isolation needs two CPUs");
        String out;
        try (ChildJvm probe = ChildJvm.start(CoreIsolationProbe.class, List.of(), List.of())) {
            assertTrue(probe.process().waitFor(60, TimeUnit.SECONDS), "the probe ended: " + probe.output());
            out = probe.output();
            assertEquals(0, probe.process().exitValue(), out);
        }
        Map<String, String> during = new HashMap<>();
        int after = 0;
        for (String line : out.split("\n")) {
            String[] f = line.trim().split(" ");
            if (f[0].equals("after")) {
                after++;
                assertEquals(during.get("before"), f[1], "CPUs given back on close: thread " + line + "\n" + out);
            } else if (f.length == 2) {
                during.put(f[0], f[1]);
            }
        }
        assertEquals("200", during.get("status"), out);
        BitSet all = CoreIsolationProbe.cpus(during.get("before"));
        int last = all.length() - 1;
        BitSet step = new BitSet();
        step.set(last);
        BitSet rest = (BitSet) all.clone();
        rest.clear(last);
        assertEquals(step, CoreIsolationProbe.cpus(during.get("step")), "the step thread's CPUs\n" + out);
        assertEquals(rest, CoreIsolationProbe.cpus(during.get("main")), "the main (older) thread's CPUs\n" + out);
        assertEquals(rest, CoreIsolationProbe.cpus(during.get("events")), "the events thread's CPUs\n" + out);
        assertTrue(after > 5, "every thread listed after close\n" + out);
    }
}
