package io.troupe.actors.serve;

import com.sun.jna.LastErrorException;
import com.sun.jna.Library;
import com.sun.jna.Native;
import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Gives the decode step thread a core of its own (Linux): the thread that opens it is pinned to the
 * last CPU the process may use, and every other thread of the process to the remaining ones, again
 * every {@link #SWEEP_MS} ms for threads started since (a thread inherits its creator's CPUs). On
 * two cores the step thread otherwise loses a quarter to a third of its time to the HTTP threads,
 * whose wake-ups Linux places on its core, although the process leaves part of the other core idle.
 * {@link #close} gives every thread back the CPUs the process had. One isolated server per process:
 * a second one would pin its step thread to the same CPU and sweep the first's off it.
 *
 * <p>Affinity is set with {@code sched_setaffinity(2)} through JNA. Where that is not available (not
 * Linux, fewer than two CPUs, no native access) {@link #open} says why and returns null: serving goes
 * on unpinned.
 */
final class CoreIsolation implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(CoreIsolation.class);
    /** How often threads started since are moved off the step thread's CPU. */
    static final long SWEEP_MS = 250;
    /** A cpu_set_t of 1024 CPUs, as glibc's. */
    private static final int MASK_LONGS = 16;

    /** The two libc calls. */
    interface LibC extends Library {
        int sched_setaffinity(int pid, long cpusetsize, long[] mask) throws LastErrorException;

        int sched_getaffinity(int pid, long cpusetsize, long[] mask) throws LastErrorException;
    }

    private final LibC libc;
    private final long[] all;
    private final long[] others;
    private final int stepTid;
    private final ScheduledExecutorService sweeper;

    private CoreIsolation(LibC libc, long[] all, long[] others, int stepTid) {
        this.libc = libc;
        this.all = all;
        this.others = others;
        this.stepTid = stepTid;
        this.sweeper = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "troupe-serve-affinity");
            t.setDaemon(true);
            return t;
        });
    }

    /**
     * Pins the calling thread to the last of the process's CPUs and the process's other threads to the
     * rest; null (after logging why) where that cannot be done.
     */
    static CoreIsolation open() {
        LibC libc;
        try {
            if (!System.getProperty("os.name", "").toLowerCase(java.util.Locale.ROOT).contains("linux")) {
                LOG.warn("step core isolation: not on Linux ({}); serving unpinned", System.getProperty("os.name"));
                return null;
            }
            libc = Native.load("c", LibC.class);
        } catch (UnsatisfiedLinkError | RuntimeException e) {
            LOG.warn("step core isolation: no native access ({}); serving unpinned", e.toString());
            return null;
        }
        long[] all = new long[MASK_LONGS];
        try {
            libc.sched_getaffinity(0, 8L * MASK_LONGS, all);
        } catch (LastErrorException e) {
            LOG.warn("step core isolation: sched_getaffinity failed (errno {}); serving unpinned", e.getErrorCode());
            return null;
        }
        BitSet cpus = BitSet.valueOf(all);
        if (cpus.cardinality() < 2) {
            LOG.warn("step core isolation: the process may use {} CPU ({}); serving unpinned", cpus.cardinality(),
                cpus);
            return null;
        }
        int stepCpu = cpus.length() - 1;
        BitSet rest = (BitSet) cpus.clone();
        rest.clear(stepCpu);
        long[] others = Arrays.copyOf(rest.toLongArray(), MASK_LONGS);
        long[] mine = new long[MASK_LONGS];
        mine[stepCpu / 64] |= 1L << (stepCpu % 64);
        int tid;
        try {
            tid = currentTid();
            libc.sched_setaffinity(0, 8L * MASK_LONGS, mine);
        } catch (IOException | LastErrorException e) {
            LOG.warn("step core isolation: cannot pin the step thread ({}); serving unpinned", e.toString());
            return null;
        }
        CoreIsolation iso = new CoreIsolation(libc, all, others, tid);
        iso.sweep();
        iso.sweeper.scheduleWithFixedDelay(iso::sweep, SWEEP_MS, SWEEP_MS, TimeUnit.MILLISECONDS);
        LOG.info("step core isolation: the step thread on CPU {}, the process's other threads on {}", stepCpu, rest);
        return iso;
    }

    /** The calling thread's kernel thread id, from /proc/thread-self. */
    static int currentTid() throws IOException {
        Path link = Files.readSymbolicLink(Path.of("/proc/thread-self"));
        return Integer.parseInt(link.getFileName().toString());
    }

    /** Moves every thread of the process but the step thread off the step thread's CPU. */
    private void sweep() {
        for (int tid : threads()) {
            if (tid != stepTid) {
                setIfDifferent(tid, others);
            }
        }
    }

    private void setIfDifferent(int tid, long[] mask) {
        try {
            long[] now = new long[MASK_LONGS];
            libc.sched_getaffinity(tid, 8L * MASK_LONGS, now);
            if (!Arrays.equals(now, mask)) {
                libc.sched_setaffinity(tid, 8L * MASK_LONGS, mask);
            }
        } catch (LastErrorException e) {
            // the thread ended since the listing (ESRCH): nothing to move
        }
    }

    private static List<Integer> threads() {
        List<Integer> tids = new ArrayList<>();
        try (DirectoryStream<Path> tasks = Files.newDirectoryStream(Path.of("/proc/self/task"))) {
            for (Path t : tasks) {
                tids.add(Integer.parseInt(t.getFileName().toString()));
            }
        } catch (IOException | NumberFormatException e) {
            LOG.debug("step core isolation: cannot list the process's threads", e);
        }
        return tids;
    }

    /** Stops the sweeps and gives every thread of the process (the step thread included) the CPUs it had. */
    @Override
    public void close() {
        sweeper.shutdownNow();
        try {
            sweeper.awaitTermination(5, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        for (int tid : threads()) {
            setIfDifferent(tid, all);
        }
    }
}
