package io.troupe.actors.cli;

import java.util.concurrent.CompletionStage;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import sun.misc.Signal;

/**
 * The stop of a command that runs until stopped ({@code troupe serve}, {@code troupe serve-stage}). SIGTERM and
 * SIGINT (Ctrl-C) are handled by the command, so it stops on its own thread, in order (a server drains, then
 * closes its actor system and its transport), and exits with a code that says how the stop went: the JVM's
 * default for them would run the stop inside shutdown hooks, beside every other hook, and exit 143 (130)
 * whatever happened. {@code sun.misc.Signal} (module {@code jdk.unsupported}) is the JDK's only way to handle
 * a signal. Any other end of the JVM (SIGHUP, a signal the JVM would not let this handle) goes through a
 * shutdown hook that asks for the same stop and waits, up to a bound, for it to end.
 *
 * <p>Threads: {@link #awaitRequest} and {@link #stopped} on the command's thread; the handlers and the hook
 * on the JVM's.
 */
final class StopSignal {
    private final CountDownLatch requested = new CountDownLatch(1);
    private final CountDownLatch stopped = new CountDownLatch(1);
    private final Thread hook;
    private volatile String reason;

    private StopSignal(String name, long hookWaitMs) {
        hook = new Thread(() -> {
            request("JVM shutdown");
            try {
                stopped.await(hookWaitMs, TimeUnit.MILLISECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }, name + "-shutdown");
    }

    /**
     * Handles SIGTERM and SIGINT from now on, and adds the shutdown hook, which waits up to {@code hookWaitMs}
     * for {@link #stopped} once it asked for the stop; {@code name} names the hook's thread.
     */
    static StopSignal install(String name, long hookWaitMs) {
        StopSignal s = new StopSignal(name, hookWaitMs);
        for (String sig : new String[] {"TERM", "INT"}) {
            try {
                Signal.handle(new Signal(sig), x -> s.request("SIG" + sig));
            } catch (IllegalArgumentException e) {
                // the JVM keeps this signal (-Xrs, or an OS that lacks it): its end comes through the hook
            }
        }
        Runtime.getRuntime().addShutdownHook(s.hook);
        return s;
    }

    private void request(String why) {
        if (reason == null) {
            reason = why;
        }
        requested.countDown();
    }

    /**
     * Blocks until a stop is asked for (then returns true) or {@code ended} completes first, as when the
     * command's actor system terminated by itself (then false).
     */
    boolean awaitRequest(CompletionStage<?> ended) throws InterruptedException {
        ended.whenComplete((v, e) -> requested.countDown());
        requested.await();
        return reason != null;
    }

    /** What asked for the stop: {@code SIGTERM}, {@code SIGINT}, {@code JVM shutdown}; null: none. */
    String reason() {
        return reason;
    }

    /**
     * The command has stopped: a shutdown hook waiting for it returns; with none running, the hook is removed,
     * so the exit that follows runs no stop again.
     */
    void stopped() {
        stopped.countDown();
        try {
            Runtime.getRuntime().removeShutdownHook(hook);
        } catch (IllegalStateException e) {
            // the JVM is shutting down: the hook is running and returns now
        }
    }
}
