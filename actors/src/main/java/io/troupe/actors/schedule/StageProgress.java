package io.troupe.actors.schedule;

/**
 * What one rank has received and finished in a step, and so which actions are ready. Shared by the
 * static and the adaptive policies so they agree on the dependency rules:
 * F(mb, g) needs the activation from g-1 (none for g = 0); B(mb, g) needs its own F(mb, g) and the
 * gradient from g+1 (none for the last model stage); W(mb, g) needs its own B(mb, g); BW as B.
 */
final class StageProgress {
    private final PipelineShape shape;
    private final int rank;
    private final boolean[][] inputArrived;
    private final boolean[][] gradArrived;
    private final boolean[][] forwardDone;
    private final boolean[][] backwardDone;

    StageProgress(PipelineShape shape, int rank) {
        this.shape = shape;
        this.rank = rank;
        int m = shape.microbatches();
        int v = shape.virtualStages();
        inputArrived = new boolean[v][m];
        gradArrived = new boolean[v][m];
        forwardDone = new boolean[v][m];
        backwardDone = new boolean[v][m];
    }

    void inputArrived(int microbatch, int virtualStage) {
        check(microbatch, virtualStage);
        inputArrived[virtualStage][microbatch] = true;
    }

    void gradArrived(int microbatch, int virtualStage) {
        check(microbatch, virtualStage);
        gradArrived[virtualStage][microbatch] = true;
    }

    void finished(Action action) {
        check(action.microbatch(), action.virtualStage());
        switch (action.type()) {
            case F -> forwardDone[action.virtualStage()][action.microbatch()] = true;
            case B, BW -> backwardDone[action.virtualStage()][action.microbatch()] = true;
            case W -> { }
        }
    }

    boolean hasInput(int microbatch, int virtualStage) {
        return shape.isFirstModelStage(rank, virtualStage) || inputArrived[virtualStage][microbatch];
    }

    boolean hasGrad(int microbatch, int virtualStage) {
        return forwardDone[virtualStage][microbatch]
                && (shape.isLastModelStage(rank, virtualStage) || gradArrived[virtualStage][microbatch]);
    }

    boolean forwardDone(int microbatch, int virtualStage) {
        return forwardDone[virtualStage][microbatch];
    }

    boolean backwardDone(int microbatch, int virtualStage) {
        return backwardDone[virtualStage][microbatch];
    }

    /** Whether {@code action}'s dependencies are met. */
    boolean ready(Action action) {
        int mb = action.microbatch();
        int v = action.virtualStage();
        if (mb >= shape.microbatches() || v >= shape.virtualStages()) {
            return false;
        }
        return switch (action.type()) {
            case F -> hasInput(mb, v);
            case B, BW -> hasGrad(mb, v);
            case W -> backwardDone[v][mb];
        };
    }

    private void check(int microbatch, int virtualStage) {
        if (microbatch < 0 || microbatch >= shape.microbatches()
                || virtualStage < 0 || virtualStage >= shape.virtualStages()) {
            throw new IllegalArgumentException("event out of range for rank " + rank + ": microbatch=" + microbatch
                    + ", virtualStage=" + virtualStage + ", shape=" + shape);
        }
    }
}
