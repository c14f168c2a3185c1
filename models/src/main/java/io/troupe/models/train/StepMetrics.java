package io.troupe.models.train;

/**
 * One step's figures. {@code valLoss} is NaN on steps without validation.
 *
 * @param step 1-based count of completed updates
 */
public record StepMetrics(long step, long totalSteps, double loss, double valLoss, float lr, double gradNorm,
                          double tokensPerSec, double stepMs) {
}
