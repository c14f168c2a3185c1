package io.troupe.actors.cluster;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.parallel.Layout;

/**
 * The defaults of a training job, for the command line and the Java builder alike: the values are
 * the {@code troupe.train} section of {@code reference.conf} (packaged in the jar, the one source),
 * and the settings whose default depends on others ({@code 0} or {@code -1} there) are derived
 * here by one rule each.
 */
public final class JobDefaults {
    private JobDefaults() {
    }

    /** The packaged {@code troupe.train} section: every training key with its default. */
    public static Config reference() {
        return ConfigFactory.defaultReference().getConfig("troupe.train");
    }

    /** {@code batch-size}: {@code 0} takes the preset's default. */
    public static int batchSize(int configured, GptConfig model) {
        if (configured < 0) {
            throw new IllegalArgumentException("batch-size must be >= 0 (0: the preset's): batch-size=" + configured);
        }
        return configured == 0 ? model.defaultBatchSize() : configured;
    }

    /** {@code warmup-steps}: {@code -1} is 10% of the steps (at least 1). */
    public static int warmupSteps(int configured, int steps) {
        if (configured < -1) {
            throw new IllegalArgumentException("warmup-steps must be >= 0 (-1: 10% of steps): warmup-steps="
                + configured);
        }
        return configured == -1 ? Math.max(1, steps / 10) : configured;
    }

    /** {@code virtual-stages}: {@code 0} is 2 for the interleaved schedule, else 1. */
    public static int virtualStages(int configured, String schedule) {
        if (configured < 0) {
            throw new IllegalArgumentException("virtual-stages must be >= 0 (0: by schedule): virtual-stages="
                + configured);
        }
        return configured == 0 ? ("interleaved".equals(schedule) ? 2 : 1) : configured;
    }

    /**
     * {@code microbatches}: {@code 0} is 1 on one pipeline stage, else {@code min(2 x pp, rows per
     * replica)}.
     */
    public static int microbatches(int configured, Layout layout, int batchSize) {
        if (configured < 0) {
            throw new IllegalArgumentException("microbatches must be >= 0 (0: by layout): microbatches=" + configured);
        }
        if (configured > 0) {
            return configured;
        }
        return layout.pp() * layout.virtualStages() > 1
            ? Math.max(1, Math.min(2 * layout.pp(), batchSize / layout.dp())) : 1;
    }
}
