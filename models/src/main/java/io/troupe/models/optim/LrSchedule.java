package io.troupe.models.optim;

/**
 * Linear warm-up from 0 to {@code maxLr} over {@code warmupSteps}, then cosine annealing down to
 * {@code minLr} at {@code totalSteps}, flat after. Steps are 0-based: {@code lr(0)} is the rate of
 * the first update.
 */
public record LrSchedule(float maxLr, float minLr, int warmupSteps, int totalSteps) {
    public LrSchedule {
        if (!(maxLr > 0 && maxLr < Float.POSITIVE_INFINITY)) {
            throw new IllegalArgumentException("lr must be a finite number > 0: lr=" + maxLr);
        }
        if (!(minLr >= 0 && minLr <= maxLr)) {
            throw new IllegalArgumentException("min_lr must be in [0, lr]: min_lr=" + minLr + ", lr=" + maxLr);
        }
        if (warmupSteps < 0) {
            throw new IllegalArgumentException("warmup_steps must be >= 0: warmup_steps=" + warmupSteps);
        }
        if (totalSteps < 1) {
            throw new IllegalArgumentException("steps must be >= 1: steps=" + totalSteps);
        }
    }

    /** A constant rate (the parity recipe). */
    public static LrSchedule constant(float lr) {
        return new LrSchedule(lr, lr, 0, 1);
    }

    public float lr(long step) {
        if (step < warmupSteps) {
            return maxLr * (step + 1) / (float) warmupSteps;
        }
        if (step >= totalSteps || totalSteps <= warmupSteps) {
            return minLr;
        }
        double progress = (double) (step - warmupSteps) / (totalSteps - warmupSteps);
        return (float) (minLr + 0.5 * (maxLr - minLr) * (1 + Math.cos(Math.PI * progress)));
    }
}
