package io.troupe.actors.bench;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.troupe.actors.api.JobEvent;
import io.troupe.actors.api.JobHandle;
import io.troupe.actors.api.TrainingJob;
import io.troupe.actors.api.Troupe;
import io.troupe.actors.cli.Options;
import io.troupe.actors.cluster.NodeSettings;
import io.troupe.actors.cluster.TroupeNode;
import io.troupe.bench.BenchOptions;
import io.troupe.runtime.transport.TransportNode;
import io.troupe.runtime.transport.TransportSettings;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.TimeUnit;

/**
 * {@code scripts/bench tls [--rounds R] [--steps N]}: the step-time cost of Artery TLS (mutual
 * authentication, certificates from scripts/make-certs.sh) on the control plane. Trains the tiny
 * model, layout 1x2 on two nodes in this JVM, N steps, alternately over plain TCP (the baseline) and
 * over TLS, R times each after one warm-up job, and prints each job's step time (wall time from the
 * 10th committed step to the last, as the submitter sees the commits, over the steps between) and the
 * medians.
 *
 * <p>Last line: {@code tcp_step_ms=... tls_step_ms=... tls_over_tcp=...} (medians).
 */
public final class TlsControlPlaneBench {
    private TlsControlPlaneBench() {
    }

    public static void main(String[] args) throws Exception {
        Options o = BenchOptions.parse(args, "tls", "usage: scripts/bench tls [--rounds R] [--steps N]",
            Set.of("rounds", "steps"), Set.of());
        int rounds = o.getInt("rounds", 3);
        int steps = o.getInt("steps", 60);
        if (steps < 20) {
            throw new IllegalArgumentException("--steps must be >= 20: steps=" + steps);
        }
        Path certs = Files.createTempDirectory("troupe-bench-certs");
        Path script = Path.of(System.getenv().getOrDefault("TROUPE_HOME", "."), "scripts", "make-certs.sh");
        Process p = new ProcessBuilder("bash", script.toString(), certs.toString(), "127.0.0.1")
            .redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(120, TimeUnit.SECONDS) || p.exitValue() != 0) {
            throw new IllegalStateException("make-certs.sh failed: " + out);
        }
        Config tcp = ConfigFactory.load();
        Config tls = ConfigFactory.parseString(String.join("\n",
            "troupe.cluster.tls.enabled = on",
            "troupe.cluster.tls.key-store = \"" + certs.resolve("127.0.0.1.p12") + "\"",
            "troupe.cluster.tls.key-store-password = changeit",
            "troupe.cluster.tls.trust-store = \"" + certs.resolve("truststore.p12") + "\"",
            "troupe.cluster.tls.trust-store-password = changeit")).withFallback(tcp);

        System.out.printf(Locale.ROOT, "tls bench: tiny GPT, layout 1x2 on 2 nodes, %d steps per job, %d rounds%n",
            steps, rounds);
        run(tcp, steps);
        List<Double> a = new ArrayList<>();
        List<Double> b = new ArrayList<>();
        for (int r = 0; r < rounds; r++) {
            a.add(run(tcp, steps));
            b.add(run(tls, steps));
            System.out.printf(Locale.ROOT, "round %d: TCP %.2f ms/step, TLS %.2f ms/step%n", r + 1, a.get(r), b.get(r));
        }
        double ma = median(a);
        double mb = median(b);
        System.out.printf(Locale.ROOT, "tcp_step_ms=%.2f tls_step_ms=%.2f tls_over_tcp=%.3f%n", ma, mb, mb / ma);
    }

    private static double median(List<Double> v) {
        List<Double> s = new ArrayList<>(v);
        Collections.sort(s);
        int n = s.size();
        return n % 2 == 1 ? s.get(n / 2) : (s.get(n / 2 - 1) + s.get(n / 2)) / 2;
    }

    /** One job on a fresh 2-node cluster; its wall time per step from the 10th commit to the last (ms). */
    private static double run(Config config, int steps) throws Exception {
        NodeSettings base = NodeSettings.from(config).withPort(0);
        try (TransportNode transport = TransportNode.launch(TransportSettings.defaults(), Throwable::printStackTrace);
             TroupeNode first = TroupeNode.start(base.withRoles(List.of("worker", "coordinator"), 1)
                 .withSeeds(List.of()), config, transport);
             TroupeNode second = TroupeNode.start(base.withRoles(List.of("worker"), 1)
                 .withSeeds(List.of(first.hostPort())), config, transport)) {
            JobHandle h = Troupe.using(first).submit(TrainingJob.builder().model("tiny").layout("1x2").schedule("1f1b")
                .microbatches(2).batchSize(4).steps(steps).lr(3e-3f, 3e-4f, 2).gradClip(1f).seed(5)
                .stepTimeoutMs(60_000)
                .validation(0, 1).device("cpu").build());
            long[] tenth = {0};
            long[] last = {0};
            h.onEvent(e -> {
                if (e instanceof JobEvent.StepCompleted s) {
                    if (s.step() == 10) {
                        tenth[0] = System.nanoTime();
                    }
                    last[0] = System.nanoTime();
                }
            });
            JobEvent end = h.await(Duration.ofMinutes(5));
            if (!(end instanceof JobEvent.Finished)) {
                throw new IllegalStateException("job ended with " + end);
            }
            if (tenth[0] == 0) {
                throw new IllegalStateException("the 10th step was committed before the bench listened");
            }
            return (last[0] - tenth[0]) / 1e6 / (steps - 10);
        }
    }
}
