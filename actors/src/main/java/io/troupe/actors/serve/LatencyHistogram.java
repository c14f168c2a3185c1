package io.troupe.actors.serve;

import java.util.Locale;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.atomic.DoubleAdder;

/**
 * A Prometheus histogram of durations in seconds with fixed buckets; lock-free, any thread. Also
 * answers approximate quantiles (the upper bound of the bucket holding the rank).
 */
final class LatencyHistogram {
    private static final double[] BOUNDS_S = {0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30};
    private final String name;
    private final String help;
    private final AtomicLongArray counts = new AtomicLongArray(BOUNDS_S.length + 1);
    private final DoubleAdder sumS = new DoubleAdder();

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
        counts.incrementAndGet(b);
        sumS.add(s);
    }

    long count() {
        long n = 0;
        for (int b = 0; b < counts.length(); b++) {
            n += counts.get(b);
        }
        return n;
    }

    void render(StringBuilder sb) {
        sb.append("# HELP ").append(name).append(' ').append(help).append('\n');
        sb.append("# TYPE ").append(name).append(" histogram\n");
        long cum = 0;
        for (int b = 0; b < BOUNDS_S.length; b++) {
            cum += counts.get(b);
            sb.append(name).append("_bucket{le=\"").append(String.format(Locale.ROOT, "%s", BOUNDS_S[b])).append("\"} ")
                .append(cum).append('\n');
        }
        cum += counts.get(BOUNDS_S.length);
        sb.append(name).append("_bucket{le=\"+Inf\"} ").append(cum).append('\n');
        sb.append(name).append("_sum ").append(String.format(Locale.ROOT, "%.6f", sumS.sum())).append('\n');
        sb.append(name).append("_count ").append(cum).append('\n');
    }
}
