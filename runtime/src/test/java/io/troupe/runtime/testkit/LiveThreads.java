package io.troupe.runtime.testkit;

import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;

/** The live threads of this JVM by name prefix, for tests that check what a build or a close leaves running. */
public final class LiveThreads {
    private LiveThreads() {
    }

    /** The threads alive now whose names start with {@code prefix}. */
    public static Set<Thread> named(String prefix) {
        Set<Thread> out = new HashSet<>();
        for (Thread t : Thread.getAllStackTraces().keySet()) {
            if (t.getName().startsWith(prefix) && t.isAlive()) {
                out.add(t);
            }
        }
        return out;
    }

    /** The threads of {@code a} that are not in {@code b}. */
    public static Set<Thread> minus(Set<Thread> a, Set<Thread> b) {
        Set<Thread> out = new HashSet<>(a);
        out.removeAll(b);
        return out;
    }

    /** Joins each of {@code threads} until one deadline {@code timeoutMs} away; the names of those still alive then. */
    public static List<String> aliveAfter(Set<Thread> threads, long timeoutMs) throws InterruptedException {
        long deadlineNs = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
        for (Thread t : threads) {
            long leftMs = TimeUnit.NANOSECONDS.toMillis(deadlineNs - System.nanoTime());
            if (leftMs > 0) {
                t.join(leftMs);
            }
        }
        return threads.stream().filter(Thread::isAlive).map(Thread::getName).toList();
    }
}
