package io.troupe.actors.serve;

import io.troupe.models.infer.KvCachedGpt;
import io.troupe.models.infer.StepBatch;
import io.troupe.runtime.transport.ReceiveSlot;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executor;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;

/**
 * One pipeline stage of the served model. The actor only steers: it pairs each planned step
 * ({@link Run}, from the scheduler) with the arrival of the previous stage's activations
 * ({@link Arrived}, a notice from the data plane's receiver; the bytes stay in the receive slot)
 * and hands the pair to the stage's own executor, which runs the stage's blocks and either sends
 * the hidden states to the next stage over the data plane or, on the last stage, completes the
 * step with its logits. Steps reach the executor in plan order, since both notices come in order.
 */
final class StageActor extends AbstractBehavior<StageActor.Command> {
    /** Messages of a stage. */
    sealed interface Command {
    }

    /** Run step {@code stepId} (metadata only: tokens, positions, block tables). */
    record Run(long stepId, StepBatch batch, CompletableFuture<float[]> result) implements Command {
    }

    /** The previous stage's activations of step {@code stepId} are in a receive slot. */
    record Arrived(long stepId) implements Command {
    }

    /** What a stage's executor does with a paired step. */
    interface Work {
        void run(Run step, ReceiveSlot input);
    }

    private final boolean first;
    private final Executor executor;
    private final Work work;
    private final ConcurrentHashMap<Long, ReceiveSlot> slots;
    private final Map<Long, Run> waitingForInput = new HashMap<>();
    private final Set<Long> arrivedEarly = new HashSet<>();

    static Behavior<Command> create(KvCachedGpt stage, Executor executor, Work work,
                                    ConcurrentHashMap<Long, ReceiveSlot> slots) {
        return Behaviors.setup(ctx -> new StageActor(ctx, stage.isFirstStage(), executor, work, slots));
    }

    private StageActor(ActorContext<Command> ctx, boolean first, Executor executor, Work work,
                       ConcurrentHashMap<Long, ReceiveSlot> slots) {
        super(ctx);
        this.first = first;
        this.executor = executor;
        this.work = work;
        this.slots = slots;
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
            .onMessage(Run.class, this::onRun)
            .onMessage(Arrived.class, this::onArrived)
            .build();
    }

    private Behavior<Command> onRun(Run m) {
        if (first || arrivedEarly.remove(m.stepId())) {
            dispatch(m);
        } else {
            waitingForInput.put(m.stepId(), m);
        }
        return this;
    }

    private Behavior<Command> onArrived(Arrived m) {
        Run run = waitingForInput.remove(m.stepId());
        if (run != null) {
            dispatch(run);
        } else {
            arrivedEarly.add(m.stepId());
        }
        return this;
    }

    private void dispatch(Run m) {
        try {
            executor.execute(() -> {
                ReceiveSlot input = first ? null : slots.remove(m.stepId());
                try {
                    work.run(m, input);
                } catch (Throwable t) {
                    m.result().completeExceptionally(t);
                } finally {
                    if (input != null) {
                        input.release();
                    }
                }
            });
        } catch (RuntimeException e) {           // the executor refused the step (shutting down)
            m.result().completeExceptionally(e);
        }
    }
}
