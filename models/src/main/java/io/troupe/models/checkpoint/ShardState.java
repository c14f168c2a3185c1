package io.troupe.models.checkpoint;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * What one shard (one stage's parameters and optimizer moments) holds, on the host, by parameter
 * name with its global shape: a checkpoint written by one layout loads into another.
 */
public final class ShardState {
    /** One named tensor: parameter values and its AdamW moments. */
    public record Entry(String name, int[] shape, float[] param, float[] m, float[] v) {
    }

    private final Map<String, Entry> entries = new LinkedHashMap<>();
    private final long optimizerStep;

    public ShardState(long optimizerStep) {
        this.optimizerStep = optimizerStep;
    }

    public void put(Entry e) {
        entries.put(e.name(), e);
    }

    public Map<String, Entry> entries() {
        return entries;
    }

    public long optimizerStep() {
        return optimizerStep;
    }
}
