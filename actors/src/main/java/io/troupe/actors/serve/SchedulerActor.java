package io.troupe.actors.serve;

import io.troupe.models.infer.BatchScheduler;
import io.troupe.models.infer.DecodingModel;
import io.troupe.models.infer.FinishReason;
import io.troupe.models.infer.Generation;
import io.troupe.models.infer.GenerationListener;
import io.troupe.models.infer.SamplingParams;
import io.troupe.models.infer.StepBatch;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executor;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;

/**
 * Continuous batching driven by an actor. It owns a {@link BatchScheduler}: requests are queued as
 * they arrive, admitted into the running batch at every step and retired (finished, cancelled or
 * expired) at once.
 *
 * <p>The whole model on one stage ({@link #create(BatchScheduler, Executor, ServeMetrics, int)}):
 * the actor controls and a {@link DecodeLoop} thread runs plan, forward, sample and the next plan
 * back to back; the actor hands it admissions and cancellations through a lock-free queue and
 * stops it on stop. The hot path never goes through the actor's mailbox.
 *
 * <p>Pipeline stages: the actor itself plans steps (micro-batches) whenever fewer than the
 * pipeline's depth are in flight, hands them to the stages, and on a result samples, plans and
 * starts the next step at once, and only then streams the step's tokens to the listeners. The
 * actor's thread never runs the model.
 *
 * <p>Supervision: a failed step ends every request it holds (finish reason {@code cancelled}) and
 * serving goes on; the failure is logged. Where the runner {@link StepRunner#recovers} (pipeline stages on
 * other hosts), a failed step or a lost stage instead pauses the steps and returns every running sequence
 * to the queue; once the runner is up again they are recomputed and go on, their tokens unchanged. Three
 * failures in a row with no step done between them end the requests held, as above.
 */
public final class SchedulerActor extends AbstractBehavior<SchedulerActor.Command> {
    /** Messages of the scheduler. */
    public sealed interface Command {
    }

    /** A new request; answered {@link Accepted} or {@link Rejected} at once. */
    public record Submit(long id, int[] prompt, SamplingParams sampling, long deadlineMs, GenerationListener listener,
                         ActorRef<SubmitReply> replyTo) implements Command {
    }

    /** The client went away or gave up: free the request's blocks. */
    public record Cancel(long id) implements Command {
    }

    private record StepDone(long seq, float[] logits) implements Command {
    }

    private record StepFailed(long seq, Throwable cause) implements Command {
    }

    /** The runner found a pipeline stage lost between steps. */
    private record PipelineDown(String reason) implements Command {
    }

    /** The runner can run steps again. */
    private record PipelineUp() implements Command {
    }

    /** The runner refuses to serve, for {@code reason} ({@link StepRunner#refuses}). */
    private record PipelineRefuses(String reason) implements Command {
    }

    /** While paused: expire the waiting requests whose deadline passed. */
    private record ExpireTick() implements Command {
    }

    /** Failures in a row with no step done between them after which the requests held are ended. */
    static final int MAX_FAILURES_WITHOUT_PROGRESS = 3;

    /** The answer to {@link Submit}. */
    public sealed interface SubmitReply {
    }

    /** Queued; tokens will follow through the listener. */
    public record Accepted(long id) implements SubmitReply {
    }

    /** The queue is full: retry after {@code retryAfterS} seconds. */
    public record Rejected(int retryAfterS) implements SubmitReply {
    }

    /** The server cannot serve any request (its step loop stopped, {@code reason} says why). */
    public record Unavailable(String reason) implements SubmitReply {
    }

    private final BatchScheduler scheduler;
    private final DecodingModel model;
    private final StepRunner runner;
    private final ServeMetrics metrics;
    private final int retryAfterS;
    private final int perStep;
    private int inFlight;
    private long nextSeq;
    private long discardBelow;
    private long tokensBefore;
    private boolean paused;
    /** A tick is scheduled that expires waiting requests past their deadline while paused (no steps run). */
    private boolean expiring;
    private int failuresWithoutProgress;
    /** While the requests held are ended because the runner refuses to serve: why; else null. */
    private String failingWith;

    /**
     * A scheduler for the whole model on one stage: the actor controls (admission, cancellation,
     * its lifetime) and a {@link DecodeLoop} runs the steps back to back on its own thread, the
     * forward on {@code stepExecutor} (null: on the loop's thread). Messages reach the loop at the
     * next step boundary; no step waits for the actor. {@code isolateStepCore}: the loop's thread
     * gets a CPU of its own ({@link CoreIsolation}); {@code prefillThread}: requests arriving while
     * others decode are prefilled on a thread of their own ({@link DecodeLoop}).
     */
    public static Behavior<Command> create(BatchScheduler scheduler, Executor stepExecutor, ServeMetrics metrics,
        int retryAfterS, boolean isolateStepCore, boolean prefillThread) {
        return Behaviors.setup(ctx -> {
            DecodeLoop loop = new DecodeLoop(scheduler, stepExecutor, metrics, retryAfterS, isolateStepCore,
                prefillThread);
            metrics.readStepLoop(loop::stopped);
            DecodingModel model = scheduler.model();
            org.slf4j.Logger log = org.slf4j.LoggerFactory.getLogger(SchedulerActor.class);
            return Behaviors.receive(Command.class)
                .onMessage(Submit.class, m -> {
                    long now = System.nanoTime();
                    loop.admit(new Generation(m.id(), m.prompt(), model.config().seqLen(), m.sampling(), now,
                        now + m.deadlineMs() * 1_000_000L, new MeteredListener(m.listener(), metrics, log, () -> null)),
                        m.replyTo());
                    return Behaviors.same();
                })
                .onMessage(Cancel.class, m -> {
                    loop.cancel(m.id());
                    return Behaviors.same();
                })
                .onSignal(PostStop.class, s -> {
                    loop.close();
                    return Behaviors.same();
                })
                .build();
        });
    }

    /**
     * A scheduler whose steps run through {@code runner}: with a pipeline of depth N, up to N steps
     * (micro-batches of at most ceil(max-batch / N) sequences each) are in flight at once.
     */
    static Behavior<Command> create(BatchScheduler scheduler, StepRunner runner, ServeMetrics metrics,
        int retryAfterS) {
        return Behaviors.setup(ctx -> {
            runner.start(ctx);
            ActorRef<Command> self = ctx.getSelf();
            runner.onDown(reason -> self.tell(new PipelineDown(reason)));
            runner.onRefuses(reason -> self.tell(new PipelineRefuses(reason)));
            return new SchedulerActor(ctx, scheduler, runner, metrics, retryAfterS);
        });
    }

    private SchedulerActor(ActorContext<Command> ctx, BatchScheduler scheduler, StepRunner runner, ServeMetrics metrics,
                           int retryAfterS) {
        super(ctx);
        this.scheduler = scheduler;
        this.model = scheduler.model();
        this.runner = runner;
        this.metrics = metrics;
        this.retryAfterS = retryAfterS;
        scheduler.deferEvents(true);            // delivered at the end of each message, after the next step starts
        int depth = runner.depth();
        this.perStep = (scheduler.limits().maxBatch() + depth - 1) / depth;
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
            .onMessage(Submit.class, this::onSubmit)
            .onMessage(Cancel.class, this::onCancel)
            .onMessage(StepDone.class, this::onStepDone)
            .onMessage(StepFailed.class, this::onStepFailed)
            .onMessage(PipelineDown.class, m -> pause(m.reason()))
            .onMessage(PipelineUp.class, m -> onPipelineUp())
            .onMessage(PipelineRefuses.class, m -> onPipelineRefuses())
            .onMessage(ExpireTick.class, m -> onExpireTick())
            .onSignal(PostStop.class, s -> onPostStop())
            .build();
    }

    private Behavior<Command> onSubmit(Submit m) {
        String refused = runner.refuses();
        if (refused != null) {                   // it would wait for a pipeline that cannot come up by itself
            metrics.onRejected();
            m.replyTo().tell(new Unavailable(refused));
            return this;
        }
        long now = System.nanoTime();
        long deadlineNs = now + m.deadlineMs() * 1_000_000L;
        Generation g = new Generation(m.id(), m.prompt(), model.config().seqLen(), m.sampling(), now, deadlineNs,
            new MeteredListener(m.listener(), metrics, getContext().getLog(), () -> failingWith));
        if (scheduler.submit(g)) {
            metrics.onAccepted();
            m.replyTo().tell(new Accepted(m.id()));
            maybeStep();
        } else {
            metrics.onRejected();
            m.replyTo().tell(new Rejected(retryAfterS));
        }
        scheduler.deliverEvents();
        return this;
    }

    private Behavior<Command> onCancel(Cancel m) {
        scheduler.cancel(m.id());
        maybeStep();
        scheduler.deliverEvents();
        return this;
    }

    private Behavior<Command> onStepDone(StepDone m) {
        inFlight--;
        metrics.onStepEnded(inFlight);
        if (m.seq() < discardBelow) {
            maybeStep();                         // a step that was in flight when an earlier one failed
            scheduler.deliverEvents();
            return this;
        }
        long now = System.nanoTime();
        failuresWithoutProgress = 0;
        scheduler.complete(m.logits(), now);
        metrics.onStep((int) (scheduler.tokensGenerated() - tokensBefore), now);
        tokensBefore = scheduler.tokensGenerated();
        maybeStep();                             // the next forward starts before the tokens go out
        scheduler.deliverEvents();
        return this;
    }

    private Behavior<Command> onStepFailed(StepFailed m) {
        inFlight--;
        metrics.onStepEnded(inFlight);
        if (m.seq() < discardBelow) {
            return this;
        }
        discardBelow = nextSeq;                  // the other steps in flight are abandoned with this one
        if (runner.recovers() && ++failuresWithoutProgress <= MAX_FAILURES_WITHOUT_PROGRESS) {
            return pause(m.cause().getMessage());
        }
        getContext().getLog().error("serving step failed; ending the requests it held", m.cause());
        scheduler.cancelAll(FinishReason.CANCELLED);         // the steps in flight abandoned with their requests
        publishGauges();
        scheduler.deliverEvents();
        return this;
    }

    /**
     * A stage lost its keys and values (or a step failed): every running sequence goes back to the
     * queue to be recomputed, and no step starts until the runner says the pipeline is up.
     */
    private Behavior<Command> pause(String reason) {
        discardBelow = nextSeq;
        scheduler.preemptAll();
        metrics.onPipelineDown();
        if (!paused) {
            paused = true;
            getContext().getLog().warn("serving paused, {} request(s) wait for the pipeline: {}",
                scheduler.queueDepth(), reason);
            ActorRef<Command> self = getContext().getSelf();
            runner.recover(() -> self.tell(new PipelineUp()));
            if (!expiring) {                    // one chain of ticks, however often the pipeline goes down and up
                expiring = true;
                getContext().scheduleOnce(java.time.Duration.ofSeconds(1), self, new ExpireTick());
            }
        }
        publishGauges();
        scheduler.deliverEvents();
        return this;
    }

    private Behavior<Command> onPipelineUp() {
        if (paused) {
            paused = false;
            getContext().getLog().warn("serving resumed: {} request(s) waiting are recomputed and go on",
                scheduler.queueDepth());
        }
        maybeStep();
        scheduler.deliverEvents();
        return this;
    }

    /**
     * The runner refuses to serve (a pipeline whose stages refuse each other's frames): it will not come up by
     * itself, so every request held is answered now with the reason ({@link FailingListener#onFailed}) rather than
     * left to its deadline; new ones are refused at {@link #onSubmit} while it lasts.
     */
    private Behavior<Command> onPipelineRefuses() {
        String reason = runner.refuses();
        if (reason == null || scheduler.queueDepth() + scheduler.runningSize() == 0) {
            return this;                         // up again meanwhile, or nothing held
        }
        getContext().getLog().warn("answering the {} request(s) held with an error: {}",
            scheduler.queueDepth() + scheduler.runningSize(), reason);
        failingWith = reason;
        try {
            scheduler.cancelAll(FinishReason.CANCELLED);
            publishGauges();
            scheduler.deliverEvents();
        } finally {
            failingWith = null;
        }
        return this;
    }

    private Behavior<Command> onExpireTick() {
        expiring = paused;
        if (paused) {
            scheduler.expireWaiting(System.nanoTime());
            getContext().scheduleOnce(java.time.Duration.ofSeconds(1), getContext().getSelf(), new ExpireTick());
            publishGauges();
            scheduler.deliverEvents();
        }
        return this;
    }

    private Behavior<Command> onPostStop() {
        if (inFlight == 0) {
            scheduler.cancelAll(FinishReason.CANCELLED);
        }
        scheduler.deliverEvents();
        return this;
    }

    private void maybeStep() {
        while (!paused && inFlight < runner.depth()) {
            StepBatch batch = scheduler.plan(System.nanoTime(), perStep);
            if (batch == null) {
                break;
            }
            inFlight++;
            metrics.onStepStarted(inFlight);
            long seq = nextSeq++;
            CompletionStage<float[]> step = runner.run(batch);
            getContext().pipeToSelf(step, (logits, err) -> err == null ? new StepDone(seq, logits)
                : new StepFailed(seq, err));
        }
        publishGauges();
    }

    private void publishGauges() {
        metrics.setGauges(scheduler.queueDepth(), scheduler.runningSize(), model.cache(),
            scheduler.preemptions());
    }

    /**
     * Records time to first token and time per output token (from the times the tokens were
     * sampled), then passes events on. One thread at a time delivers a request's events.
     */
    private static final class MeteredListener implements GenerationListener {
        private final GenerationListener client;
        private final ServeMetrics metrics;
        private final org.slf4j.Logger log;
        private final java.util.function.Supplier<String> failure;
        private long previousTokenNs;
        private int delivered;                   // generated tokens passed on so far

        /** {@code failure}: why the request ends unserved when it finishes now (null: it ends normally). */
        MeteredListener(GenerationListener client, ServeMetrics metrics, org.slf4j.Logger log,
                        java.util.function.Supplier<String> failure) {
            this.client = client;
            this.metrics = metrics;
            this.log = log;
            this.failure = failure;
        }

        @Override
        public void onToken(Generation g, int token, String textDelta) {
            if (token >= 0) {
                // the k-th generated token's own time: the loop may have sampled later ones already
                long now = g.tokenNs(delivered++);
                if (previousTokenNs == 0) {
                    metrics.ttft.observeNs(now - g.submittedNs());
                } else {
                    metrics.tpot.observeNs(now - previousTokenNs);
                }
                previousTokenNs = now;
            }
            try {
                client.onToken(g, token, textDelta);
            } catch (RuntimeException e) {
                log.warn("listener of request {} failed on a token", g.id(), e);
            }
        }

        @Override
        public void onFinish(Generation g) {
            metrics.onFinished(g.finishReason());
            String failed = failure.get();
            try {
                if (failed != null && client instanceof FailingListener f) {
                    f.onFailed(g, failed);
                } else {
                    client.onFinish(g);
                }
            } catch (RuntimeException e) {
                log.warn("listener of request {} failed at its finish", g.id(), e);
            }
        }
    }
}
