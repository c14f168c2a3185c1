package io.troupe.actors.cli;

import java.util.concurrent.CompletableFuture;

/**
 * A command whose stop never ends: it installs {@link StopSignal} with a stop bound of {@code args[0]} ms, says
 * {@code ready}, and once a stop is asked for says so and never reports {@link StopSignal#stopped()}, as a run whose
 * step or job cannot end would not. How {@link StopWatchdogProcessTest} makes the stop's bound run out.
 */
public final class StuckStopMain {
    private StuckStopMain() {
    }

    public static void main(String[] args) throws InterruptedException {
        StopSignal stop = StopSignal.install("troupe-stuck", Long.parseLong(args[0]));
        System.out.println("ready");
        System.out.flush();
        if (stop.awaitRequest(new CompletableFuture<>())) {
            System.out.println("stop requested (" + stop.reason() + "); never stopping");
            System.out.flush();
        }
        Thread.currentThread().join(); // the stop that never ends
    }
}
