package io.troupe.actors.schedule;

import java.util.List;

/**
 * The verdict of {@link ScheduleValidator} on one schedule.
 *
 * @param scheduleName        the schedule checked
 * @param problems            one line per problem found, each naming the rank and the action;
 *                            empty when the schedule is valid
 * @param peakLiveActivations per rank, the most (micro-batch, virtual stage) activations live at once
 *                            in list order (F adds one, W or BW frees one)
 * @param peakActivationBytes per rank, the same peak in bytes under the cost model's sizes
 */
public record ValidationReport(String scheduleName, List<String> problems, int[] peakLiveActivations,
                               long[] peakActivationBytes) {
    public ValidationReport {
        problems = List.copyOf(problems);
    }

    public boolean valid() {
        return problems.isEmpty();
    }

    /**
     * @return this report when valid
     * @throws IllegalArgumentException listing every problem otherwise
     */
    public ValidationReport requireValid() {
        if (!valid()) {
            throw new IllegalArgumentException("invalid schedule " + scheduleName + ": " + String.join("; ", problems));
        }
        return this;
    }
}
