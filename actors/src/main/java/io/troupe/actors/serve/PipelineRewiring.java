package io.troupe.actors.serve;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.LockSupport;
import java.util.function.BooleanSupplier;
import java.util.function.Consumer;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The wiring of a {@link PipelineStepRunner}'s stage hosts, the first and after every loss, on its own rewire
 * thread: it wires again and again, every {@code retry-interval}, until a wiring works or the server closes, then
 * runs the resumptions that waited for it ({@link #recover}), each once the first stage's thread has finished what
 * it was given before. A host that refuses the first wiring (another checkpoint, another server), or stages that
 * refuse each other's frames (their auth keys differ), is a setup error that fails the server's start
 * ({@link #awaitFirst}); after a loss, a refused wiring is retried like any other.
 */
final class PipelineRewiring {
    // the runner's log: this is its wiring
    private static final Logger LOG = LoggerFactory.getLogger(PipelineStepRunner.class);

    private final ExecutorService rewirer = Executors.newSingleThreadExecutor(r -> PipelineStage.daemon(r,
        "troupe-serve-rewire"));
    private final AtomicBoolean rewiring = new AtomicBoolean();
    private final List<Runnable> whenUp = new CopyOnWriteArrayList<>();
    private final CompletableFuture<Void> firstWiring = new CompletableFuture<>();
    private final Duration retryInterval;
    private final Runnable wire;
    private final BooleanSupplier closed;
    private final Supplier<String> down;
    private final Consumer<String> notWired;
    private final Consumer<Runnable> afterStageZero;

    /**
     * Wiring with {@code wire} (one try, with a new epoch; it throws why it failed) every {@code retryInterval}
     * until it works or {@code closed} says the server closes; {@code down} reads why the pipeline is down,
     * {@code notWired} says why it stays down after a failed try, and {@code afterStageZero} runs a resumption once
     * the first stage's thread has finished what it was given before.
     */
    PipelineRewiring(Duration retryInterval, Runnable wire, BooleanSupplier closed, Supplier<String> down,
                     Consumer<String> notWired, Consumer<Runnable> afterStageZero) {
        this.retryInterval = retryInterval;
        this.wire = wire;
        this.closed = closed;
        this.down = down;
        this.notWired = notWired;
        this.afterStageZero = afterStageZero;
    }

    /**
     * Waits for the first wiring of the stage hosts.
     *
     * @throws IllegalStateException with the last reason it failed, when it is not wired in {@code timeoutMs}
     */
    void awaitFirst(long timeoutMs) {
        try {
            firstWiring.get(timeoutMs, TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            throw new IllegalStateException("the pipeline's stage hosts were not wired within " + timeoutMs + " ms: "
                + down.get());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while wiring the stage hosts", e);
        } catch (ExecutionException e) {
            throw new IllegalStateException(e.getCause().getMessage(), e.getCause());
        }
    }

    /** The first wiring worked: {@link #awaitFirst} returns. */
    void firstWired() {
        firstWiring.complete(null);
    }

    /** Runs {@code up} once the pipeline, down now, is wired again; starts the rewire thread unless it runs. */
    void recover(Runnable up) {
        whenUp.add(up);
        if (rewiring.compareAndSet(false, true)) {
            try {
                rewirer.execute(this::rewireUntilUp);
            } catch (RuntimeException e) {           // closing
                rewiring.set(false);
            }
        }
    }

    /** On the rewire thread: wires the stage hosts, again and again, until it works or the server closes. */
    private void rewireUntilUp() {
        while (!closed.getAsBoolean()) {
            try {
                wire.run();
                break;
            } catch (RuntimeException e) {
                if (closed.getAsBoolean()) {
                    break;                      // the server closes: a wiring it interrupted is no failure
                }
                String why = e.getMessage();
                notWired.accept(why);
                if (e instanceof StageHostWiring.Refused && !firstWiring.isDone()) {
                    // a host that refuses the first wiring (another checkpoint, another server) is a setup
                    // error: the server does not start; after a loss, the wiring is retried until it works
                    rewiring.set(false);
                    firstWiring.completeExceptionally(e);
                    whenUp.clear();
                    return;
                }
                LOG.warn("pipeline not wired: {}; retrying in {} ms", why, retryInterval.toMillis());
                LockSupport.parkNanos(retryInterval.toNanos());
            }
        }
        rewiring.set(false);
        if (closed.getAsBoolean()) {
            return;
        }
        List<Runnable> ups = new ArrayList<>(whenUp);
        whenUp.removeAll(ups);
        for (Runnable r : ups) {
            afterStageZero.accept(r);
        }
    }

    /** Stops the rewire thread (the server closes). */
    void stop() {
        rewirer.shutdownNow();
    }

    /** The server closes: a wait for the first wiring ends with {@code e}. */
    void failFirst(Throwable e) {
        firstWiring.completeExceptionally(e);
    }
}
