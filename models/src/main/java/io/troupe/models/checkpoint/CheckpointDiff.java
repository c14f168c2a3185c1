package io.troupe.models.checkpoint;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

/**
 * Compares the parameters of two committed checkpoints by name (shards of any layout): per
 * parameter the largest absolute difference and the largest difference relative to the first
 * checkpoint's largest magnitude of that parameter, and whether every float is bitwise the same.
 * Optimizer moments are compared too (as {@code name.m} and {@code name.v}): they count for
 * {@code bitwise}, while {@code max_abs} and {@code max_rel} are over the parameters.
 */
public final class CheckpointDiff {
    /** One tensor's difference. */
    public record Entry(String name, long numel, double maxAbs, double maxRel, boolean bitwise) {
        /** A parameter, not one of its optimizer moments ({@code .m}, {@code .v}). */
        public boolean isParameter() {
            return !name.endsWith(".m") && !name.endsWith(".v");
        }
    }

    /**
     * @param entries      per tensor, by name
     * @param onlyInFirst  tensors the second checkpoint lacks
     * @param onlyInSecond tensors the first checkpoint lacks
     */
    public record Result(List<Entry> entries, List<String> onlyInFirst, List<String> onlyInSecond, long stepA,
                         long stepB) {
        public boolean bitwise() {
            return onlyInFirst.isEmpty() && onlyInSecond.isEmpty() && entries.stream().allMatch(Entry::bitwise);
        }

        /** The largest absolute difference over the parameters (moments excluded). */
        public double maxAbs() {
            return entries.stream().filter(Entry::isParameter).mapToDouble(Entry::maxAbs).max().orElse(0);
        }

        /** The largest relative difference over the parameters (moments excluded). */
        public double maxRel() {
            return entries.stream().filter(Entry::isParameter).mapToDouble(Entry::maxRel).max().orElse(0);
        }

        /** The largest relative difference over the AdamW moments. */
        public double maxRelMoments() {
            return entries.stream().filter(e -> !e.isParameter()).mapToDouble(Entry::maxRel).max().orElse(0);
        }

        /** {@code bitwise=true|false max_abs=... max_rel=...}: the last line of {@code troupe checkpoint diff}. */
        public String summary() {
            return String.format(Locale.ROOT, "bitwise=%s max_abs=%.3e max_rel=%.3e", bitwise(), maxAbs(), maxRel());
        }
    }

    private CheckpointDiff() {
    }

    /** Loads (and verifies) both checkpoints, each a checkpoint directory or one holding {@code step-*} ones. */
    public static Result of(java.nio.file.Path a, java.nio.file.Path b) {
        Checkpoints.Loaded la = Checkpoints.load(Checkpoints.resolve(a));
        Checkpoints.Loaded lb = Checkpoints.load(Checkpoints.resolve(b));
        return of(la, lb);
    }

    public static Result of(Checkpoints.Loaded a, Checkpoints.Loaded b) {
        Map<String, float[]> ta = tensors(a);
        Map<String, float[]> tb = tensors(b);
        List<Entry> entries = new ArrayList<>();
        List<String> onlyA = new ArrayList<>();
        for (Map.Entry<String, float[]> e : ta.entrySet()) {
            float[] y = tb.get(e.getKey());
            if (y == null) {
                onlyA.add(e.getKey());
                continue;
            }
            entries.add(compare(e.getKey(), e.getValue(), y));
        }
        List<String> onlyB = new ArrayList<>();
        for (String n : tb.keySet()) {
            if (!ta.containsKey(n)) {
                onlyB.add(n);
            }
        }
        return new Result(entries, onlyA, onlyB, a.manifest().step(), b.manifest().step());
    }

    static Entry compare(String name, float[] x, float[] y) {
        if (x.length != y.length) {
            return new Entry(name + " (sizes " + x.length + " vs " + y.length + ")", x.length, Double.POSITIVE_INFINITY,
                Double.POSITIVE_INFINITY, false);
        }
        double maxAbs = 0;
        double scale = 0;
        boolean bitwise = true;
        for (int i = 0; i < x.length; i++) {
            if (Float.floatToRawIntBits(x[i]) != Float.floatToRawIntBits(y[i])) {
                bitwise = false;
            }
            maxAbs = Math.max(maxAbs, Math.abs((double) x[i] - y[i]));
            scale = Math.max(scale, Math.abs(x[i]));
        }
        double rel = maxAbs == 0 ? 0 : maxAbs / Math.max(scale, Float.MIN_NORMAL);
        return new Entry(name, x.length, maxAbs, rel, bitwise);
    }

    private static Map<String, float[]> tensors(Checkpoints.Loaded c) {
        Map<String, float[]> out = new TreeMap<>();
        for (ShardState s : c.shards().values()) {
            for (ShardState.Entry e : s.entries().values()) {
                out.put(e.name(), e.param());
                if (e.m() != null) {
                    out.put(e.name() + ".m", e.m());
                }
                if (e.v() != null) {
                    out.put(e.name() + ".v", e.v());
                }
            }
        }
        return out;
    }
}
