package io.troupe.actors.bench;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * CPU time of the serve bench's threads over a timed run, by group: the model's step threads, the
 * server's actor and HTTP threads, the load generator's client threads (its own threads and the HTTP
 * client's), the JIT's compiler threads, the GC's threads and the rest; each as a share of one core
 * over the wall time, with the process total. On Linux every thread of the process is counted from
 * {@code /proc/self/task} (the JVM's own threads included), with the time each group spent runnable
 * but waiting for a core ({@code schedstat}'s run-queue wait): a group that waits for cores rather
 * than for work shows it there, and the share of each group's CPU time spent in the kernel
 * ({@code stat}'s stime against utime + stime, in clock ticks: coarse, but over a run of seconds it
 * tells system calls from computing). Threads that ended during the run are not counted (the groups listed
 * all live through it). Elsewhere the Java threads' CPU from the thread MX bean.
 *
 * @param startNs      {@code System.nanoTime()} at the start
 * @param threads      each live thread's {name, cpu ns, run-queue wait ns} at the start, by thread id
 * @param processCpuNs the process's CPU time at the start (-1 where unknown)
 */
record CpuByGroup(long startNs, Map<Long, ThreadTimes> threads, long processCpuNs) {
    private static final Path TASKS = Path.of("/proc/self/task");
    private static final String[] GROUPS = {"model", "prefill", "server", "client", "jit", "gc", "other"};

    /**
     * One thread's name, CPU time, time spent runnable while waiting for a core (-1: unknown), and its
     * user and kernel CPU time in clock ticks (-1: unknown).
     */
    record ThreadTimes(String name, long cpuNs, long waitNs, long userTicks, long kernelTicks) {
    }

    static CpuByGroup start() {
        return new CpuByGroup(System.nanoTime(), sample(), processCpuNow());
    }

    private static Map<Long, ThreadTimes> sample() {
        Map<Long, ThreadTimes> out = new HashMap<>();
        if (Files.isDirectory(TASKS)) {
            try (DirectoryStream<Path> tasks = Files.newDirectoryStream(TASKS)) {
                for (Path t : tasks) {
                    try {
                        String name = Files.readString(t.resolve("comm")).trim();
                        String[] s = Files.readString(t.resolve("schedstat")).trim().split("\\s+");
                        // stat: the fields after the parenthesised name; utime and stime are fields 14 and 15
                        String stat = Files.readString(t.resolve("stat"));
                        String[] f = stat.substring(stat.lastIndexOf(')') + 2).trim().split("\\s+");
                        out.put(Long.parseLong(t.getFileName().toString()),
                            new ThreadTimes(name, Long.parseLong(s[0]), Long.parseLong(s[1]), Long.parseLong(f[11]),
                                Long.parseLong(f[12])));
                    } catch (IOException | RuntimeException ended) {
                        // the thread ended while listed
                    }
                }
                return out;
            } catch (IOException e) {
                out.clear();
            }
        }
        java.lang.management.ThreadMXBean mx = ManagementFactory.getThreadMXBean();
        for (long id : mx.getAllThreadIds()) {
            java.lang.management.ThreadInfo info = mx.getThreadInfo(id);
            long cpu = mx.getThreadCpuTime(id);
            if (info != null && cpu >= 0) {
                out.put(id, new ThreadTimes(info.getThreadName(), cpu, -1, -1, -1));
            }
        }
        return out;
    }

    private static long processCpuNow() {
        if (ManagementFactory.getOperatingSystemMXBean() instanceof com.sun.management.OperatingSystemMXBean os) {
            return os.getProcessCpuTime();
        }
        return -1;
    }

    /** The group of a thread by its name (on Linux the kernel's name: the first 15 characters). */
    static String group(String thread) {
        if (thread.startsWith("troupe-serve-st") || thread.startsWith("troupe-infer-ro")) {
            return "model";                         // troupe-serve-step, troupe-serve-stage-*, troupe-infer-rows
        }
        if (thread.startsWith("troupe-serve-pr")) {
            return "prefill";                       // troupe-serve-prefill: prompts prefilled beside the steps
        }
        if (thread.startsWith("serve-bench-cli") || thread.startsWith("HttpClient")) {
            return "client";
        }
        if (thread.startsWith("troupe-serve")) {
            return "server";
        }
        if (thread.contains("CompilerThre") || thread.contains("CompilerThread")) {
            return "jit";
        }
        if (thread.startsWith("GC Thread") || thread.startsWith("G1 ") || thread.startsWith("VM Thread")) {
            return "gc";
        }
        return "other";
    }

    /**
     * {@code "cpu (cores): model 0.93, server 0.41, client 0.30, jit 0.10, gc 0.01, other 0.02, process 1.70;
     * waiting for a core (cores): model 0.20, ..."}.
     */
    String report() {
        double wallNs = System.nanoTime() - startNs;
        Map<String, Double> cpu = new LinkedHashMap<>();
        Map<String, Double> wait = new LinkedHashMap<>();
        Map<String, long[]> ticks = new LinkedHashMap<>();
        for (String g : GROUPS) {
            cpu.put(g, 0.0);
            wait.put(g, 0.0);
            ticks.put(g, new long[2]);
        }
        boolean waits = false;
        for (Map.Entry<Long, ThreadTimes> e : sample().entrySet()) {
            ThreadTimes now = e.getValue();
            ThreadTimes then = threads.get(e.getKey());
            String g = group(now.name());
            cpu.merge(g, (now.cpuNs() - (then == null ? 0 : then.cpuNs())) / wallNs, Double::sum);
            if (now.waitNs() >= 0) {
                waits = true;
                wait.merge(g, (now.waitNs() - (then == null ? 0 : then.waitNs())) / wallNs, Double::sum);
            }
            if (now.userTicks() >= 0) {
                long[] t = ticks.get(g);
                t[0] += now.userTicks() - (then == null ? 0 : then.userTicks());
                t[1] += now.kernelTicks() - (then == null ? 0 : then.kernelTicks());
            }
        }
        StringBuilder sb = new StringBuilder("cpu (cores):");
        cpu.forEach((g, v) -> sb.append(String.format(Locale.ROOT, " %s %.2f,", g, v)));
        long p = processCpuNow();
        sb.append(String.format(Locale.ROOT, " process %.2f", p < 0 || processCpuNs < 0 ? Double.NaN
            : (p - processCpuNs) / wallNs));
        if (waits) {
            sb.append("; runnable, waiting for a core (cores):");
            wait.forEach((g, v) -> sb.append(String.format(Locale.ROOT, " %s %.2f,", g, v)));
            sb.setLength(sb.length() - 1);
            sb.append("; in the kernel (share of each group's cpu):");
            ticks.forEach((g, t) -> sb.append(t[0] + t[1] == 0 ? String.format(Locale.ROOT, " %s -,", g)
                : String.format(Locale.ROOT, " %s %.2f,", g, (double) t[1] / (t[0] + t[1]))));
            sb.setLength(sb.length() - 1);
        }
        return sb.toString();
    }
}
