package io.troupe.actors.bench;

import java.lang.management.ManagementFactory;
import java.lang.management.ThreadInfo;
import java.lang.management.ThreadMXBean;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * CPU time of the serve bench's threads over a timed run, by group: the model's step threads, the
 * server's actor and HTTP threads, the load generator's client threads (its own threads and the HTTP
 * client's), and the rest; each as a share of one core over the wall time, with the process total.
 * Threads that ended during the run are not counted (the groups listed all live through it).
 *
 * @param startNs      {@code System.nanoTime()} at the start
 * @param cpuNs        each live thread's CPU time at the start, by thread id
 * @param processCpuNs the process's CPU time at the start (-1 where unknown)
 */
record CpuByGroup(long startNs, Map<Long, Long> cpuNs, long processCpuNs) {
    static CpuByGroup start() {
        ThreadMXBean mx = ManagementFactory.getThreadMXBean();
        Map<Long, Long> cpu = new HashMap<>();
        for (long id : mx.getAllThreadIds()) {
            cpu.put(id, mx.getThreadCpuTime(id));
        }
        return new CpuByGroup(System.nanoTime(), cpu, processCpuNow());
    }

    private static long processCpuNow() {
        if (ManagementFactory.getOperatingSystemMXBean() instanceof com.sun.management.OperatingSystemMXBean os) {
            return os.getProcessCpuTime();
        }
        return -1;
    }

    private static String group(String thread) {
        if (thread.startsWith("troupe-serve-step") || thread.startsWith("troupe-infer-rows")
            || thread.startsWith("troupe-serve-stage")) {
            return "model";
        }
        if (thread.startsWith("serve-bench-client") || thread.startsWith("HttpClient")) {
            return "client";
        }
        if (thread.startsWith("troupe-serve")) {
            return "server";
        }
        return "other";
    }

    /** {@code "cpu (cores): model 0.93, server 0.41, client 0.30, other 0.02, process 1.70"}. */
    String report() {
        ThreadMXBean mx = ManagementFactory.getThreadMXBean();
        double wallNs = System.nanoTime() - startNs;
        Map<String, Double> byGroup = new LinkedHashMap<>();
        for (String g : new String[] {"model", "server", "client", "other"}) {
            byGroup.put(g, 0.0);
        }
        for (long id : mx.getAllThreadIds()) {
            long now = mx.getThreadCpuTime(id);
            ThreadInfo info = mx.getThreadInfo(id);
            if (now < 0 || info == null) {
                continue;
            }
            byGroup.merge(group(info.getThreadName()), (now - cpuNs.getOrDefault(id, 0L)) / wallNs, Double::sum);
        }
        StringBuilder sb = new StringBuilder("cpu (cores):");
        byGroup.forEach((g, v) -> sb.append(String.format(Locale.ROOT, " %s %.2f,", g, v)));
        long p = processCpuNow();
        sb.append(String.format(Locale.ROOT, " process %.2f", p < 0 || processCpuNs < 0 ? Double.NaN
            : (p - processCpuNs) / wallNs));
        return sb.toString();
    }
}
