package io.troupe.actors.schedule;

import java.util.List;

/**
 * Runs a {@link Schedule} as a {@link SchedulePolicy}: each rank starts its listed actions strictly in
 * order, each as soon as its dependencies are met.
 */
final class StaticSchedulePolicy implements SchedulePolicy {
    private final Schedule schedule;

    StaticSchedulePolicy(Schedule schedule) {
        this.schedule = schedule;
    }

    @Override
    public String name() {
        return schedule.name();
    }

    @Override
    public PipelineShape shape() {
        return schedule.shape();
    }

    @Override
    public StagePolicy newStage(int rank) {
        if (rank < 0 || rank >= schedule.shape().stages()) {
            throw new IllegalArgumentException(
                    "rank out of range: rank=" + rank + ", stages=" + schedule.shape().stages());
        }
        return new Stage(schedule.shape(), rank, schedule.actions(rank));
    }

    /** One rank's cursor over its action list. */
    private static final class Stage implements StagePolicy {
        private final PipelineShape shape;
        private final int rank;
        private final List<Action> actions;
        private final StageProgress progress;
        private int nextIndex;
        private boolean running;

        Stage(PipelineShape shape, int rank, List<Action> actions) {
            this.shape = shape;
            this.rank = rank;
            this.actions = actions;
            this.progress = new StageProgress(shape, rank);
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
        }

        @Override
        public Action next(double nowUs) {
            if (running || nextIndex >= actions.size()) {
                return null;
            }
            Action head = actions.get(nextIndex);
            if (!progress.ready(head)) {
                return null;
            }
            nextIndex++;
            running = true;
            return head;
        }

        @Override
        public boolean isDone() {
            return !running && nextIndex >= actions.size();
        }

        @Override
        public Action awaited() {
            return nextIndex < actions.size() ? actions.get(nextIndex) : null;
        }

        @Override
        public boolean blockedByMemory() {
            return false;
        }

        @Override
        public String toString() {
            return "rank " + rank + " of " + shape + " at " + nextIndex + "/" + actions.size();
        }
    }
}
