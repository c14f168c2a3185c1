package io.troupe.actors.bench;

import io.troupe.actors.bench.ServeStats.Run;
import io.troupe.actors.serve.InferenceServer;
import io.troupe.actors.serve.ServeSettings;
import java.net.URI;
import java.net.http.HttpClient;
import java.time.Duration;
import java.util.List;
import java.util.Locale;

/**
 * The serve bench's servers, one per run: each started from the bench's {@link Serving}, warmed up or settled
 * under load with prompts of their own, then timed (a timed run also prints the CPU its threads took, the
 * stage hosts' CPU, and the server's per-step cycle), and closed.
 *
 * <p>Threading: {@link #configureWarmup} once, before the first server; then the bench's main thread.
 */
final class ServeRuns {
    /** A round's JIT compile time below this share of its wall time: the JIT has settled. */
    private static final double SETTLED_JIT_SHARE = 0.02;

    /** The warm-up rounds' prompts: none of them a timed one. */
    private static List<String> warmPrompts;

    /** Requests sent under load before each timed run (not counted). */
    private static int warmup = 256;

    private ServeRuns() {
    }

    /** Requests sent under load before each timed run (0: none), and the prompts the warm-ups send. */
    static void configureWarmup(int requests, List<String> prompts) {
        warmup = requests;
        warmPrompts = prompts;
    }

    /**
     * Runs rounds of {@code --warmup} requests on a server of settings {@code s}, untimed, until the JIT's
     * compile time in a round is under {@link #SETTLED_JIT_SHARE} of the round's wall time, at most
     * {@code maxRounds}: the HTTP stack alone is thousands of methods, which the JIT is still compiling
     * (a third of a core) long after the first few hundred requests, and compiled code serves both timed
     * runs alike. Prints the rounds taken and the last round's share.
     */
    static void settle(String mode, Serving serving, ServeSettings s, int stages, int clients,
                       int maxTokens, int maxRounds) throws Exception {
        if (maxRounds <= 0) {
            return;
        }
        java.lang.management.CompilationMXBean jit = java.lang.management.ManagementFactory.getCompilationMXBean();
        if (jit == null || !jit.isCompilationTimeMonitoringSupported()) {
            System.out.println("warm-up: the JVM reports no compile time; no settling rounds");
            return;
        }
        List<String> round = warmPrompts;
        try (InferenceServer server = serving.start(s, stages)) {
            HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
            URI uri = URI.create("http://127.0.0.1:" + server.port() + "/v1/completions");
            double share = Double.NaN;
            int r = 0;
            long t0 = System.nanoTime();
            while (r < maxRounds) {
                long jit0 = jit.getTotalCompilationTime();
                long w0 = System.nanoTime();
                ServeLoad.load(http, uri, round, clients, maxTokens);
                r++;
                share = (jit.getTotalCompilationTime() - jit0) / ((System.nanoTime() - w0) / 1e6);
                if (share < SETTLED_JIT_SHARE) {
                    break;
                }
            }
            System.out.printf(Locale.ROOT, "warm-up, %s: %d rounds of %d requests (%.1f s) until the JIT settled: "
                + "compile time %.1f%% of the last round's wall time%s%n", mode, r, round.size(),
                (System.nanoTime() - t0) / 1e9, 100 * share, share < SETTLED_JIT_SHARE ? "" : " (not settled)");
        }
    }

    /**
     * A timed run: starts a server of settings {@code s} on {@code stages} stages, sends it the warm-up load
     * (untimed), then {@code prompts} from {@code clients} clients; prints the CPU taken and the per-step cycle,
     * and returns the run's figures. Fails naming the run when a request did not complete.
     */
    static Run run(String name, Serving serving, ServeSettings s, int stages, List<String> prompts,
                   int clients, int maxTokens) throws Exception {
        try (InferenceServer server = serving.start(s, stages)) {
            HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
            URI uri = URI.create("http://127.0.0.1:" + server.port() + "/v1/completions");
            // warm-up under the same load, untimed: the JIT compiles the step, the server's and the
            // client's paths before the clock starts (compiling takes a core for seconds on a small host)
            if (warmup > 0) {
                ServeLoad.load(http, uri, warmPrompts, clients, maxTokens);
            }
            URI metricsUri = URI.create("http://127.0.0.1:" + server.port() + "/metrics");
            double[] m0 = ServeLoad.stepCycle(http, metricsUri);
            CpuByGroup cpu = CpuByGroup.start();
            long hostCpu0 = serving.hostCpuNs();
            long t0 = System.nanoTime();
            List<double[]> results = ServeLoad.load(http, uri, prompts, clients, maxTokens);
            double seconds = (System.nanoTime() - t0) / 1e9;
            long hostCpu1 = serving.hostCpuNs();
            System.out.println(name + ": " + cpu.report());
            if (hostCpu0 >= 0 && hostCpu1 >= 0) {
                System.out.printf(Locale.ROOT, "%s: stage-host processes %.0f%% of a core%n", name,
                    100 * (hostCpu1 - hostCpu0) / 1e9 / seconds);
            }
            double[] m1 = ServeLoad.stepCycle(http, metricsUri);
            double steps = m1[0] - m0[0];
            if (steps > 0 && m1[1] > m0[1]) {
                // per step: wall time of the whole run, then the decode loop's forward and its work
                // between forwards, and the events thread's delivery of the step's tokens
                System.out.printf(Locale.ROOT,
                    "%s: %.0f steps, %.2f tokens/step; per step: cycle %.3f ms = forward %.3f ms + schedule %.3f ms"
                        + " (sample %.3f ms) + idle %.3f ms; token delivery %.3f ms (events thread)%n",
                    name, steps, (m1[4] - m0[4]) / steps, seconds * 1e3 / steps, (m1[1] - m0[1]) * 1e3 / steps,
                    (m1[2] - m0[2]) * 1e3 / steps, (m1[5] - m0[5]) * 1e3 / steps,
                    (seconds - (m1[1] - m0[1]) - (m1[2] - m0[2])) * 1e3 / steps, (m1[3] - m0[3]) * 1e3 / steps);
                double beside = m1[6] - m0[6];
                if (beside > 0) {
                    System.out.printf(Locale.ROOT, "%s: %.0f of %d requests prefilled beside the steps, %.3f ms of the"
                        + " prefill thread's forward each%n", name, beside, prompts.size(),
                        (m1[7] - m0[7]) * 1e3 / beside);
                }
            }
            if (results.size() != prompts.size()) {
                throw new IllegalStateException(name + ": " + results.size() + " of " + prompts.size()
                    + " requests completed");
            }
            return ServeStats.of(name, results, seconds);
        }
    }
}
