package io.troupe.actors.serve;

import java.util.Locale;

/**
 * A Prometheus histogram of durations in seconds with fixed buckets; any thread. An observation and the text are
 * each taken under the histogram's lock, so a scrape's buckets, count and sum are of one moment (an observation
 * is a few adds; the writers are the threads that deliver tokens).
 */
final class LatencyHistogram {
    private static final double[] BOUNDS_S = {0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30};
    private final String name;
    private final String help;
    /** Observations per bucket (the last: above every bound) and their sum; guarded by this. */
    private final long[] counts = new long[BOUNDS_S.length + 1];
    private double sumS;

    LatencyHistogram(String name, String help) {
        this.name = name;
        this.help = help;
    }

    void observeNs(long ns) {
        double s = ns / 1e9;
        int b = 0;
        while (b < BOUNDS_S.length && s > BOUNDS_S[b]) {
            b++;
        }
        synchronized (this) {
            counts[b]++;
            sumS += s;
        }
    }

    void render(StringBuilder sb) {
        long[] at;
        double sum;
        synchronized (this) {
            at = counts.clone();
            sum = sumS;
        }
        sb.append("# HELP ").append(name).append(' ').append(help).append('\n');
        sb.append("# TYPE ").append(name).append(" histogram\n");
        long cum = 0;
        for (int b = 0; b < BOUNDS_S.length; b++) {
            cum += at[b];
            sb.append(name).append("_bucket{le=\"").append(String.format(Locale.ROOT, "%s", BOUNDS_S[b])).append("\"} ")
                .append(cum).append('\n');
        }
        cum += at[BOUNDS_S.length];
        sb.append(name).append("_bucket{le=\"+Inf\"} ").append(cum).append('\n');
        sb.append(name).append("_sum ").append(String.format(Locale.ROOT, "%.6f", sum)).append('\n');
        sb.append(name).append("_count ").append(cum).append('\n');
    }
}
