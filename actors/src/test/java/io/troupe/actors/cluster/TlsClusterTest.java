package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.troupe.actors.api.JobEvent;
import io.troupe.actors.api.JobHandle;
import io.troupe.actors.api.Troupe;
import io.troupe.runtime.transport.TransportNode;
import io.troupe.runtime.transport.TransportSettings;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.apache.pekko.cluster.Cluster;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Artery over TLS with mutual authentication, certificates from scripts/make-certs.sh: nodes with a
 * certificate from the cluster's CA train the same job as without TLS (same losses; its step-time
 * cost is measured by {@code scripts/bench tls}), and a node with another CA's certificate, or without TLS, cannot
 * join. Real nodes on 127.0.0.1.
 */
@Tag("slow")
@Timeout(300)
class TlsClusterTest {
    @TempDir
    static Path certs;
    private final List<AutoCloseable> open = new ArrayList<>();

    private static io.troupe.actors.api.TrainingJob job(int steps) {
        return io.troupe.actors.api.TrainingJob.builder().model("tiny").layout("1x2").schedule("1f1b").microbatches(2)
            .batchSize(4).steps(steps).lr(3e-3f, 3e-4f, 2).gradClip(1f).seed(5).stepTimeoutMs(30_000).validation(0, 1)
            .device("cpu").build();
    }

    @BeforeAll
    static void makeCertificates() throws Exception {
        TestCertificates.make(certs.resolve("cluster"));
        TestCertificates.make(certs.resolve("rogue"));
    }

    @AfterEach
    void closeAll() throws Exception {
        for (int i = open.size() - 1; i >= 0; i--) {
            open.get(i).close();
        }
    }

    private static Config tls(Path dir) {
        return TestCertificates.tls(dir).withFallback(ConfigFactory.parseString(
            "pekko.cluster.shutdown-after-unsuccessful-join-seed-nodes = 5s")).withFallback(ConfigFactory.load());
    }

    /** Runs the job on a fresh 2-node cluster; returns its steps. */
    private List<JobEvent.StepCompleted> train(Config config, int steps, String label) throws Exception {
        TransportNode transport = TransportNode.launch(TransportSettings.defaults(), Throwable::printStackTrace);
        NodeSettings base = NodeSettings.from(config).withPort(0);
        try (transport;
             TroupeNode first = TroupeNode.start(base.withRoles(List.of("worker", "coordinator"), 1)
                 .withSeeds(List.of()), config, transport);
             TroupeNode second = TroupeNode.start(base.withRoles(List.of("worker"), 1)
                 .withSeeds(List.of(first.hostPort())), config, transport)) {
            long t0 = System.nanoTime();
            JobHandle h = Troupe.using(first).submit(job(steps));
            JobEvent end = h.await(Duration.ofSeconds(200));
            double wallS = (System.nanoTime() - t0) / 1e9;
            assertInstanceOf(JobEvent.Finished.class, end, label + ": job ended with " + end);
            List<JobEvent.StepCompleted> done = h.steps();
            double ms = done.stream().skip(5).mapToDouble(JobEvent.StepCompleted::stepMs).average().orElse(Double.NaN);
            System.out.printf(Locale.ROOT, "%s: %d steps, mean step %.2f ms (steps 6..%d), job %.2f s%n", label, steps,
                ms, steps, wallS);
            return done;
        }
    }

    @Test
    void shouldTrainTheSameOverTlsAsOverTcp() throws Exception {
        int steps = 40;
        train(ConfigFactory.load(), 10, "warm-up (no TLS)");
        List<JobEvent.StepCompleted> plain = train(ConfigFactory.load(), steps, "Artery TCP");
        List<JobEvent.StepCompleted> secure = train(tls(certs.resolve("cluster")), steps, "Artery TLS");
        for (int i = 0; i < steps; i++) {
            assertEquals(plain.get(i).loss(), secure.get(i).loss(), "step " + (i + 1) + " loss");
        }
    }

    private static int members(Cluster c) {
        int n = 0;
        for (var m : c.state().getMembers()) {
            n++;
        }
        return n;
    }

    @Test
    void shouldKeepOutANodeWithAnotherCasCertificateOrNoTls() throws Exception {
        Config cluster = tls(certs.resolve("cluster"));
        NodeSettings base = NodeSettings.from(cluster).withPort(0);
        TroupeNode first = TroupeNode.start(base.withRoles(List.of("coordinator"), 0).withSeeds(List.of()), cluster,
            null);
        open.add(first);
        Cluster c = Cluster.get(Adapter.toClassic(first.system()));

        // The strangers start first and keep asking to join (an InitJoin a second); a node with the
        // cluster CA's certificate, started after them, joins; a few more retries later the strangers
        // are still outside, and none of them ever saw itself Up.
        Config plain = ConfigFactory.load();
        List<TroupeNode> strangers = new ArrayList<>();
        for (Config stranger : List.of(tls(certs.resolve("rogue")), plain)) {
            TroupeNode s = TroupeNode.start(NodeSettings.from(stranger).withPort(0).withRoles(List.of("coordinator"), 0)
                .withSeeds(List.of(first.hostPort())), stranger, null);
            open.add(s);
            strangers.add(s);
        }
        TroupeNode member = TroupeNode.start(base.withRoles(List.of("coordinator"), 0)
            .withSeeds(List.of(first.hostPort())), cluster, null);
        open.add(member);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (members(c) < 2 && System.nanoTime() < deadline) {
            Thread.sleep(10); // the nodes' threads join it: spinning would take one of the two cores
        }
        assertEquals(2, members(c), "a node with the cluster CA's certificate should join");
        long observeUntil = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (System.nanoTime() < observeUntil) {
            for (TroupeNode s : strangers) {
                assertTrue(Cluster.get(Adapter.toClassic(s.system())).selfMember().status()
                    != org.apache.pekko.cluster.MemberStatus.up(), "a stranger saw itself Up");
            }
            assertEquals(2, members(c), "a stranger joined");
            Thread.sleep(10);
        }
    }
}
