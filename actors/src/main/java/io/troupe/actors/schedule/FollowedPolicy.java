package io.troupe.actors.schedule;

import java.util.ArrayDeque;

/**
 * A tensor-parallel member's decisions under a policy whose order depends on arrival times (the
 * adaptive one): the members of a stage must run the same actions in the same order, because each
 * action issues collectives over their group, so one member (the leader, tp index 0) decides and
 * the others follow. A follower is told each action the leader started ({@link #follow}) and starts
 * it once its own inputs for it are here; it never chooses.
 *
 * <p>Threading: not thread-safe; the member's step loop owns it.
 */
public final class FollowedPolicy implements StagePolicy {
    private final StageProgress progress;
    private final ArrayDeque<Action> told = new ArrayDeque<>();
    private int remaining;
    private boolean running;

    /**
     * @param shape          the pipeline's shape
     * @param rank           this member's pipeline rank
     * @param actionsPerStep actions the leader runs in one step (3 per micro-batch and chunk when B and W are split)
     */
    public FollowedPolicy(PipelineShape shape, int rank, int actionsPerStep) {
        if (actionsPerStep <= 0) {
            throw new IllegalArgumentException("a step has at least one action: actionsPerStep=" + actionsPerStep);
        }
        this.progress = new StageProgress(shape, rank);
        this.remaining = actionsPerStep;
    }

    /** The leader started {@code action}: run it next, in the order told. */
    public void follow(Action action) {
        if (told.size() + (running ? 1 : 0) >= remaining) {
            throw new IllegalStateException("the leader told more actions than the step has: action=" + action
                + ", remaining=" + remaining);
        }
        told.add(action);
    }

    /** True when every action told so far has been started: the follower needs the leader's next one. */
    public boolean needsLeader() {
        return told.isEmpty() && !running && remaining > 0;
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
        remaining--;
        progress.finished(action);
    }

    @Override
    public Action next(double nowUs) {
        if (running || told.isEmpty() || !progress.ready(told.peek())) {
            return null;
        }
        running = true;
        return told.poll();
    }

    @Override
    public boolean isDone() {
        return remaining == 0;
    }

    @Override
    public Action awaited() {
        return told.peek();
    }

    @Override
    public boolean blockedByMemory() {
        return false;
    }
}
