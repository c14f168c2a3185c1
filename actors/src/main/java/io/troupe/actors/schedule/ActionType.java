package io.troupe.actors.schedule;

/**
 * What a stage computes for one micro-batch on one of its virtual stages.
 *
 * <ul>
 *   <li>{@link #F}: forward; needs the activation from the previous model stage.</li>
 *   <li>{@link #B}: input gradient; needs the gradient from the next model stage (the last model
 *       stage needs only its own F). Sends a gradient to the previous model stage.</li>
 *   <li>{@link #W}: weight gradient; needs this stage's B of the same micro-batch. Frees the
 *       micro-batch's activations.</li>
 *   <li>{@link #BW}: B and W fused, for schedules that do not split them; costs B + W.</li>
 * </ul>
 */
public enum ActionType {
    F, B, W, BW;

    /** True for B and BW: the actions that produce the gradient sent upstream. */
    public boolean isBackward() {
        return this == B || this == BW;
    }

    /** True for W and BW: the actions after which the micro-batch's activations are freed. */
    public boolean freesActivations() {
        return this == W || this == BW;
    }
}
