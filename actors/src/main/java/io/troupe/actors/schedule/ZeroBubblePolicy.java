package io.troupe.actors.schedule;

import java.util.ArrayDeque;
import java.util.List;

/**
 * The rule that places the zero-bubble schedules' weight gradients: follow a 1F1B-style order of F
 * and B with {@code memoryFactor * (p-1-rank)} warm-up forwards; when the next of those is not ready,
 * run the oldest pending W; before a forward, run W first while more than
 * {@code memoryFactor * rank} are pending (so live activations never pass {@code memoryFactor * p});
 * after the last B, run the rest. Memory factor 1 is ZB-H1, 2 is ZB-H2. {@link Schedules#zbH1} and
 * {@link Schedules#zbH2} run it once on unit costs to fix the order.
 */
final class ZeroBubblePolicy implements SchedulePolicy {
    private final String name;
    private final PipelineShape shape;
    private final int memoryFactor;

    ZeroBubblePolicy(String name, PipelineShape shape, int memoryFactor) {
        this.name = name;
        this.shape = shape;
        this.memoryFactor = memoryFactor;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public PipelineShape shape() {
        return shape;
    }

    @Override
    public StagePolicy newStage(int rank) {
        return new Stage(shape, rank, memoryFactor);
    }

    private static final class Stage implements StagePolicy {
        private final List<Action> order;
        private final StageProgress progress;
        private final ArrayDeque<Action> pendingW = new ArrayDeque<>();
        private final int maxPendingBeforeForward;
        private int nextIndex;
        private boolean running;

        Stage(PipelineShape shape, int rank, int memoryFactor) {
            this.order = Schedules.warmupThenAlternate(memoryFactor * (shape.stages() - 1 - rank),
                    shape.microbatches(), ActionType.B);
            this.progress = new StageProgress(shape, rank);
            this.maxPendingBeforeForward = memoryFactor * rank;
        }

        @Override
        public void onInputArrived(int microbatch, int virtualStage) {
            progress.inputArrived(microbatch, virtualStage);
        }

        @Override
        public void onGradArrived(int microbatch, int virtualStage) {
            progress.gradArrived(microbatch, virtualStage);
        }

        @Override
        public void onActionFinished(Action action) {
            running = false;
            progress.finished(action);
            if (action.type() == ActionType.B) {
                pendingW.addLast(action.withType(ActionType.W));
            }
        }

        @Override
        public Action next(double nowUs) {
            if (running) {
                return null;
            }
            Action chosen = choose();
            if (chosen != null) {
                running = true;
            }
            return chosen;
        }

        private Action choose() {
            if (nextIndex < order.size()) {
                Action head = order.get(nextIndex);
                if (head.type() == ActionType.F && pendingW.size() > maxPendingBeforeForward) {
                    return pendingW.pollFirst();
                }
                if (progress.ready(head)) {
                    nextIndex++;
                    return head;
                }
            }
            return pendingW.pollFirst();
        }

        @Override
        public boolean isDone() {
            return !running && nextIndex >= order.size() && pendingW.isEmpty();
        }

        @Override
        public Action awaited() {
            return nextIndex < order.size() ? order.get(nextIndex) : null;
        }

        @Override
        public boolean blockedByMemory() {
            return false;
        }
    }
}
