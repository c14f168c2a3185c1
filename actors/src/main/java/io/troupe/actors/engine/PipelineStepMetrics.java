package io.troupe.actors.engine;

import io.troupe.actors.trace.Timeline;
import io.troupe.models.train.StepMetrics;

/**
 * One pipelined step's figures: the single-device metrics plus the measured bubble fraction
 * (idle / (busy + idle) over all workers, from step start to the last action), the time spent
 * reducing data-parallel gradients, and the step's timeline (F/B/W and idle gaps per worker).
 */
public record PipelineStepMetrics(StepMetrics step, double bubble, double allReduceMs, Timeline timeline) {
}
