package io.troupe.models.parallel;

import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A parallel layout {@code dp × pp × tp} with {@code v} virtual stages per pipeline rank. One
 * immutable value, built once and passed in; no static rank state anywhere.
 *
 * <p>{@code rank = tp_i + tp * (dp_i + dp * pp_i)}: tensor-parallel peers are adjacent (so they share a
 * node), then data-parallel replicas, then pipeline stages. For dp=2, pp=2, tp=2:
 * <pre>
 *   rank | pp_i dp_i tp_i
 *   -----+---------------
 *     0  |  0    0    0
 *     1  |  0    0    1
 *     2  |  0    1    0
 *     3  |  0    1    1
 *     4  |  1    0    0
 *     5  |  1    0    1
 *     6  |  1    1    0
 *     7  |  1    1    1
 * </pre>
 * The data-parallel group of rank 5 is {5, 7}; its pipeline group is {1, 5}; its tensor group {4, 5}.
 */
public record Layout(int dp, int pp, int tp, int virtualStages) {
    /** {@link #toString}'s form with virtual stages: {@code DPxPPxTP (v=V)}. */
    private static final Pattern WITH_VIRTUAL = Pattern.compile("(.*\\S)\\s*\\(v=(\\d{1,9})\\)");

    public Layout {
        if (dp < 1 || pp < 1 || tp < 1 || virtualStages < 1) {
            throw new IllegalArgumentException("layout sizes must be >= 1: dp=" + dp + ", pp=" + pp + ", tp=" + tp
                + ", v=" + virtualStages);
        }
    }

    /** Parses {@code DPxPPxTP} or {@code DPxPP} (tp = 1), e.g. {@code 2x2} or {@code 2x2x1}. */
    public static Layout parse(String s, int virtualStages) {
        String[] parts = s.trim().toLowerCase(Locale.ROOT).split("x");
        if (parts.length < 2 || parts.length > 3) {
            throw new IllegalArgumentException("layout must be DPxPP or DPxPPxTP, got '" + s + "'");
        }
        try {
            int dp = Integer.parseInt(parts[0]);
            int pp = Integer.parseInt(parts[1]);
            int tp = parts.length == 3 ? Integer.parseInt(parts[2]) : 1;
            return new Layout(dp, pp, tp, virtualStages);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("layout must be DPxPP or DPxPPxTP with positive integers, got '" + s
                + "'", e);
        }
    }

    /**
     * Parses a layout as {@link #toString} writes it, as a checkpoint's manifest records it: {@code DPxPPxTP},
     * followed by {@code " (v=V)"} when it has virtual stages, or {@code DPxPP[xTP]} alone (v = 1).
     *
     * @throws IllegalArgumentException naming {@code s} when it is neither
     */
    public static Layout parseWritten(String s) {
        Matcher m = WITH_VIRTUAL.matcher(s.trim());
        return m.matches() ? parse(m.group(1), Integer.parseInt(m.group(2))) : parse(s, 1);
    }

    public static Layout single() {
        return new Layout(1, 1, 1, 1);
    }

    public int worldSize() {
        return dp * pp * tp;
    }

    /** Model stages: pp × v. */
    public int modelStages() {
        return pp * virtualStages;
    }

    public int rank(int dpIndex, int ppIndex, int tpIndex) {
        check(dpIndex, dp, "dp_i");
        check(ppIndex, pp, "pp_i");
        check(tpIndex, tp, "tp_i");
        return tpIndex + tp * (dpIndex + dp * ppIndex);
    }

    public int tpIndex(int rank) {
        checkRank(rank);
        return rank % tp;
    }

    public int dpIndex(int rank) {
        checkRank(rank);
        return (rank / tp) % dp;
    }

    public int ppIndex(int rank) {
        checkRank(rank);
        return rank / (tp * dp);
    }

    /** Ranks holding the same shard in other replicas, in dp order (the gradient all-reduce group). */
    public int[] dataParallelGroup(int rank) {
        int[] g = new int[dp];
        for (int d = 0; d < dp; d++) {
            g[d] = rank(d, ppIndex(rank), tpIndex(rank));
        }
        return g;
    }

    /** Ranks of the same replica and tensor slice along the pipeline, in stage order. */
    public int[] pipelineGroup(int rank) {
        int[] g = new int[pp];
        for (int p = 0; p < pp; p++) {
            g[p] = rank(dpIndex(rank), p, tpIndex(rank));
        }
        return g;
    }

    /** Tensor-parallel peers, in tp order. */
    public int[] tensorParallelGroup(int rank) {
        int[] g = new int[tp];
        for (int t = 0; t < tp; t++) {
            g[t] = rank(dpIndex(rank), ppIndex(rank), t);
        }
        return g;
    }

    private void checkRank(int rank) {
        if (rank < 0 || rank >= worldSize()) {
            throw new IllegalArgumentException("rank out of range: rank=" + rank + ", world size=" + worldSize());
        }
    }

    private static void check(int i, int n, String what) {
        if (i < 0 || i >= n) {
            throw new IllegalArgumentException(what + " out of range: " + what + "=" + i + ", size=" + n);
        }
    }

    @Override
    public String toString() {
        return dp + "x" + pp + "x" + tp + (virtualStages > 1 ? " (v=" + virtualStages + ")" : "");
    }
}
