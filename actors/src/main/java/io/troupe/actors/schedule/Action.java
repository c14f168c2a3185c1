package io.troupe.actors.schedule;

/**
 * One unit of work in a stage's schedule: {@code type(mb, v)}.
 *
 * @param type         forward, input gradient, weight gradient or both fused
 * @param microbatch   micro-batch index, {@code 0 <= microbatch < m}
 * @param virtualStage the rank's virtual stage (model chunk), {@code 0 <= virtualStage < v};
 *                     always 0 without interleaving
 */
public record Action(ActionType type, int microbatch, int virtualStage) {
    public Action {
        if (type == null) {
            throw new IllegalArgumentException("action type must not be null: microbatch=" + microbatch);
        }
        if (microbatch < 0 || virtualStage < 0) {
            throw new IllegalArgumentException(
                    "action indices must be >= 0: microbatch=" + microbatch + ", virtualStage=" + virtualStage);
        }
    }

    public static Action f(int microbatch) {
        return new Action(ActionType.F, microbatch, 0);
    }

    public static Action b(int microbatch) {
        return new Action(ActionType.B, microbatch, 0);
    }

    public static Action w(int microbatch) {
        return new Action(ActionType.W, microbatch, 0);
    }

    public static Action bw(int microbatch) {
        return new Action(ActionType.BW, microbatch, 0);
    }

    /** The same micro-batch and virtual stage with another type. */
    public Action withType(ActionType other) {
        return new Action(other, microbatch, virtualStage);
    }

    /** Short label, e.g. {@code F3} or {@code B3.1} on virtual stage 1. */
    public String label() {
        return virtualStage == 0 ? type.name() + microbatch : type.name() + microbatch + "." + virtualStage;
    }

    @Override
    public String toString() {
        return type + "(mb=" + microbatch + ", v=" + virtualStage + ")";
    }
}
