package io.troupe.actors.bench;

import io.troupe.bench.Median;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * The serve bench's figures: a timed run's throughput and latency percentiles from its requests' results, the
 * table of every run, and the last lines (one per repeat) that scripts read.
 */
final class ServeStats {
    private ServeStats() {
    }

    /** One timed run: tokens per second, and TTFT and TPOT percentiles in ms (request latencies when whole). */
    record Run(double tokensPerS, long tokens, double seconds, double ttftP50Ms, double ttftP99Ms, double tpotP50Ms,
               double tpotP99Ms) {
    }

    /**
     * The figures of run {@code name} from its requests' results ({completion tokens, ttft ms, tpot ms} each),
     * taking {@code seconds} in all; prints them.
     */
    static Run of(String name, List<double[]> results, double seconds) {
        long tokens = 0;
        double[] ttft = new double[results.size()];
        List<Double> tpot = new ArrayList<>();
        for (int i = 0; i < results.size(); i++) {
            double[] r = results.get(i);
            tokens += (long) r[0];
            ttft[i] = r[1];
            if (r[0] > 1) {
                tpot.add(r[2]);
            }
        }
        double[] tp = tpot.stream().mapToDouble(Double::doubleValue).toArray();
        Run run = new Run(tokens / seconds, tokens, seconds, Median.of(ttft), pct(ttft, 0.99), Median.of(tp),
            pct(tp, 0.99));
        System.out.printf(Locale.ROOT,
            "%s: %d tokens in %.2f s = %.1f tokens/s; TTFT p50 %.1f ms p99 %.1f ms; TPOT p50 %.2f ms p99 %.2f ms%n",
            name, tokens, seconds, run.tokensPerS(), run.ttftP50Ms(), run.ttftP99Ms(), run.tpotP50Ms(),
            run.tpotP99Ms());
        return run;
    }

    /** Prints the table of every pair of runs (max-batch 1, continuous) and the last line of each pair. */
    static void report(List<Run[]> pairs, int maxBatch) {
        boolean stream = ServeLoad.isStreaming();
        System.out.println();
        System.out.println("| repeat | mode | tokens/s | TTFT p50 ms | TTFT p99 ms | TPOT p50 ms | TPOT p99 ms |"
            + " speedup |");
        System.out.println("|---|---|---|---|---|---|---|---|");
        for (int i = 0; i < pairs.size(); i++) {
            Run one = pairs.get(i)[0];
            Run many = pairs.get(i)[1];
            row(i + 1, "max-batch 1", one, 1.0);
            row(i + 1, "continuous, max-batch " + maxBatch, many, many.tokensPerS() / one.tokensPerS());
        }
        for (Run[] pair : pairs) {
            Run one = pair[0];
            Run many = pair[1];
            if (!stream) {
                // whole responses: the latency columns above are request latencies; no TTFT or TPOT
                System.out.printf(Locale.ROOT,
                    "tokens_per_s_batch1=%.1f tokens_per_s=%.1f speedup=%.2f request_ms_p50=%.1f%n",
                    one.tokensPerS(), many.tokensPerS(), many.tokensPerS() / one.tokensPerS(), many.ttftP50Ms());
            } else {
                System.out.printf(Locale.ROOT,
                    "tokens_per_s_batch1=%.1f tokens_per_s=%.1f speedup=%.2f ttft_p50_ms=%.1f tpot_p99_ms=%.2f"
                        + " tpot_p99_ms_batch1=%.2f%n",
                    one.tokensPerS(), many.tokensPerS(), many.tokensPerS() / one.tokensPerS(), many.ttftP50Ms(),
                    many.tpotP99Ms(), one.tpotP99Ms());
            }
        }
    }

    private static void row(int repeat, String name, Run r, double speedup) {
        System.out.printf(Locale.ROOT, "| %d | %s | %.1f | %.1f | %.1f | %.2f | %.2f | %.2f |%n", repeat, name,
            r.tokensPerS(), r.ttftP50Ms(), r.ttftP99Ms(), r.tpotP50Ms(), r.tpotP99Ms(), speedup);
    }

    private static double pct(double[] v, double p) {
        if (v.length == 0) {
            return Double.NaN;
        }
        double[] s = v.clone();
        Arrays.sort(s);
        return s[(int) Math.min(s.length - 1, Math.ceil(p * s.length) - 1)];
    }
}
