package io.troupe.actors.cli;

import java.util.concurrent.CompletionStage;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import sun.misc.Signal;

/**
 * The user's stop of a long-running command ({@code troupe train} on every engine, {@code troupe serve},
 * {@code troupe serve-stage}). SIGTERM and SIGINT (Ctrl-C) are handled by the command, so it stops on its own
 * thread, in order (a training run ends its step or its job and says where to resume; a server drains, then
 * closes its actor system and its transport), and exits with a code that says how the stop went: the JVM's
 * default for them would run the stop inside shutdown hooks, beside every other hook. {@code sun.misc.Signal}
 * (module {@code jdk.unsupported}) is the JDK's only way to handle a signal. Any other end of the JVM (SIGHUP,
 * a signal the JVM would not let this handle, a {@code System.exit} elsewhere) goes through a shutdown hook
 * that asks for the same stop and waits for it to end.
 *
 * <p>Every stop is bounded: when the command has not reported {@link #stopped} within {@code stopWaitMs} of
 * the request, the hook returns (the JVM then exits with its own status), and a signal's stop ends the
 * process at once with that signal's status ({@link #signalStatus}), saying so on stderr.
 *
 * <p>Threads: {@link #awaitRequest}, {@link #requested} and {@link #stopped} on the command's thread; the
 * handlers, the hook and the {@link #onRequest} action on the JVM's.
 */
final class StopSignal implements AutoCloseable {
    private final CountDownLatch requested = new CountDownLatch(1);
    private final CountDownLatch stopped = new CountDownLatch(1);
    private final String name;
    private final long stopWaitMs;
    private final Thread hook;
    private final java.util.Map<Signal, sun.misc.SignalHandler> previous = new java.util.LinkedHashMap<>();
    private String reason;
    private Runnable action;

    private StopSignal(String name, long stopWaitMs) {
        this.name = name;
        this.stopWaitMs = stopWaitMs;
        this.hook = new Thread(() -> {
            request("JVM shutdown");
            awaitStopped();
        }, name + "-shutdown");
    }

    /**
     * Handles SIGTERM and SIGINT from now on, and adds the shutdown hook; a stop asked for has
     * {@code stopWaitMs} to reach {@link #stopped}. {@code name} names the threads.
     */
    static StopSignal install(String name, long stopWaitMs) {
        StopSignal s = new StopSignal(name, stopWaitMs);
        for (String sig : new String[] {"TERM", "INT"}) {
            try {
                Signal signal = new Signal(sig);
                s.previous.put(signal, Signal.handle(signal, x -> s.onSignal("SIG" + sig)));
            } catch (IllegalArgumentException e) {
                // the JVM keeps this signal (-Xrs, or an OS that lacks it): its end comes through the hook
            }
        }
        Runtime.getRuntime().addShutdownHook(s.hook);
        return s;
    }

    private void onSignal(String why) {
        if (request(why)) {
            Thread deadline = new Thread(() -> {
                if (!awaitStopped()) {
                    System.err.printf("troupe: the stop (%s) did not end within %d s: exiting now%n", why,
                        stopWaitMs / 1000);
                    System.err.flush();
                    Runtime.getRuntime().halt(signalStatus());
                }
            }, name + "-stop-deadline");
            deadline.setDaemon(true);
            deadline.start();
        }
    }

    /** Records the first request and runs the action; false for a later one. */
    private boolean request(String why) {
        Runnable run;
        synchronized (this) {
            if (reason != null) {
                return false;
            }
            reason = why;
            run = action;
        }
        requested.countDown();
        if (run != null) {
            run.run();
        }
        return true;
    }

    /**
     * Runs {@code stopAction} (it must return at once, as {@code JobHandle.cancel} does) when a stop is asked
     * for, on the thread that asked, or now on this thread when one already was.
     */
    void onRequest(Runnable stopAction) {
        synchronized (this) {
            action = stopAction;
            if (reason == null) {
                return;
            }
        }
        stopAction.run();
    }

    /** How long a stop asked for has to reach {@link #stopped} before the process ends at once. */
    long stopWaitMs() {
        return stopWaitMs;
    }

    /** Whether a stop was asked for. */
    boolean requested() {
        return requested.getCount() == 0 && reason() != null;
    }

    /**
     * Blocks until a stop is asked for (then returns true) or {@code ended} completes first, as when the
     * command's actor system terminated by itself (then false).
     */
    boolean awaitRequest(CompletionStage<?> ended) throws InterruptedException {
        ended.whenComplete((v, e) -> requested.countDown());
        requested.await();
        return reason() != null;
    }

    /** What asked for the stop: {@code SIGTERM}, {@code SIGINT}, {@code JVM shutdown}; null: none. */
    synchronized String reason() {
        return reason;
    }

    /**
     * The exit status a stop by this signal has, as a shell reports a process the signal ended: 143 for SIGTERM,
     * else 130 (SIGINT; after a hook's stop the JVM's own status wins anyway).
     */
    int signalStatus() {
        return "SIGTERM".equals(reason()) ? 128 + 15 : 128 + 2;
    }

    private boolean awaitStopped() {
        try {
            return stopped.await(stopWaitMs, TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    /**
     * The command has stopped (or ended without a stop): a hook or deadline waiting for it returns; with no hook
     * running, the hook is removed, so the exit that follows runs no stop again, and the signals get back the
     * handlers they had (a command run inside another program leaves its handlers as they were).
     */
    void stopped() {
        stopped.countDown();
        synchronized (this) {
            previous.forEach(Signal::handle);
            previous.clear();
        }
        try {
            Runtime.getRuntime().removeShutdownHook(hook);
        } catch (IllegalStateException e) {
            // the JVM is shutting down: the hook is running and returns now
        }
    }

    /** {@link #stopped}. */
    @Override
    public void close() {
        stopped();
    }
}
