package io.troupe.runtime.bench;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadInfo;
import java.lang.management.ThreadMXBean;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * CPU time of every thread of this JVM (an embedded media driver's included) over a timed part of a
 * benchmark, as a share of the wall time, and the process's minor page faults meanwhile: the thread near
 * 100% is the one that bounds the figure. {@link #start()} before the timed part, {@link #busiest(int)}
 * after it; threads that ended in between are not listed.
 *
 * @param startNs       {@code System.nanoTime()} at the start
 * @param cpuNs         each live thread's CPU time at the start, by thread id
 * @param faultsAtStart the process's minor page faults at the start (-1 where unreadable)
 */
public record ThreadCpu(long startNs, Map<Long, Long> cpuNs, long faultsAtStart) {
    public static ThreadCpu start() {
        ThreadMXBean mx = ManagementFactory.getThreadMXBean();
        Map<Long, Long> cpu = new HashMap<>();
        for (long id : mx.getAllThreadIds()) {
            cpu.put(id, mx.getThreadCpuTime(id));
        }
        return new ThreadCpu(System.nanoTime(), cpu, minorFaults());
    }

    /** The process's minor page faults so far (field 10 of /proc/self/stat), -1 where unreadable. */
    public static long minorFaults() {
        try {
            String stat = Files.readString(Path.of("/proc/self/stat"));
            return Long.parseLong(stat.substring(stat.lastIndexOf(')') + 2).split(" ")[7]);
        } catch (IOException | RuntimeException e) {
            return -1;
        }
    }

    /** The {@code n} busiest threads as {@code "name 93%, ..."} and the minor page faults since the start. */
    public String busiest(int n) {
        ThreadMXBean mx = ManagementFactory.getThreadMXBean();
        double wallNs = System.nanoTime() - startNs;
        List<String> rows = new ArrayList<>();
        List<Double> shares = new ArrayList<>();
        for (long id : mx.getAllThreadIds()) {
            long now = mx.getThreadCpuTime(id);
            ThreadInfo info = mx.getThreadInfo(id);
            if (now < 0 || info == null) {
                continue;
            }
            double share = (now - cpuNs.getOrDefault(id, 0L)) / wallNs;
            String name = info.getThreadName();
            name = name.contains("[") ? name.substring(name.indexOf('[')) : name;
            int at = 0;
            while (at < shares.size() && shares.get(at) >= share) {
                at++;
            }
            shares.add(at, share);
            rows.add(at, String.format(Locale.ROOT, "%s %.0f%%", name, share * 100));
        }
        return String.join(", ", rows.subList(0, Math.min(n, rows.size()))) + "; minor page faults "
            + (minorFaults() - faultsAtStart);
    }
}
