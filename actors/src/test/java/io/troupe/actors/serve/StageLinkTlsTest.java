package io.troupe.actors.serve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.troupe.actors.cluster.ClusterSecurity;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.infer.InferenceWeights;
import io.troupe.models.infer.Quantization;
import io.troupe.models.parallel.StagePartition;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The stage link over TLS with mutual authentication ({@code troupe.cluster.tls}, certificates from
 * scripts/make-certs.sh): a server and a stage host holding certificates of one CA serve the tokens of a
 * one-stage server; a stage host with another CA's certificate, or without TLS, is never wired and the
 * server does not start.
 */
@Tag("slow")
@Timeout(240)
class StageLinkTlsTest {
    @TempDir
    static Path dir;

    @BeforeAll
    static void makeCertificates() throws Exception {
        for (String ca : List.of("ours", "rogue")) {
            ProcessBuilder pb = new ProcessBuilder("bash", "../scripts/make-certs.sh", dir.resolve(ca).toString(),
                "127.0.0.1").redirectErrorStream(true);
            pb.environment().put("JAVA_HOME", System.getProperty("java.home"));
            Process p = pb.start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertTrue(p.waitFor(120, TimeUnit.SECONDS), "make-certs.sh did not end");
            assertEquals(0, p.exitValue(), out);
        }
    }

    private static Config tls(String ca) {
        Path d = dir.resolve(ca);
        return ConfigFactory.parseString(String.join("\n",
            "troupe.cluster.tls.enabled = on",
            "troupe.cluster.tls.key-store = \"" + d.resolve("127.0.0.1.p12") + "\"",
            "troupe.cluster.tls.key-store-password = changeit",
            "troupe.cluster.tls.trust-store = \"" + d.resolve("truststore.p12") + "\"",
            "troupe.cluster.tls.trust-store-password = changeit",
            "troupe.serve.stage-link.loss-timeout = 2s",
            "troupe.serve.stage-link.connect-timeout = 8s",
            "troupe.serve.stage-link.retry-interval = 200ms")).withFallback(ConfigFactory.load()).resolve();
    }

    private static StageLinks links(Config config, StageHostServer host) {
        StageLinks l = StageLinks.from(config, List.of(host.hostPort()));
        assertEquals(config.getBoolean("troupe.cluster.tls.enabled"), l.tls().enabled());
        return l;
    }

    private static List<String> choices(int port, List<String> bodies) throws Exception {
        List<String> out = new ArrayList<>();
        for (String body : bodies) {
            HttpResponse<String> r = ServeTestSupport.CLIENT.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:"
                + port + "/v1/completions")).timeout(Duration.ofSeconds(60))
                .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
            assertEquals(200, r.statusCode(), r.body());
            out.add(r.body().substring(r.body().indexOf("\"choices\"")));
        }
        return out;
    }

    @Test
    void shouldServeOverATlsStageLinkAndRefuseHostsOfAnotherCaOrWithoutTls() throws Exception {
        GptConfig cfg = GptConfig.small();
        Path ckpt = ServeTestSupport.twoStageCheckpoint(dir.resolve("ckpt"), cfg);
        List<String> bodies = List.of("{\"prompt\":\"to be\",\"max_tokens\":24,\"temperature\":0}",
            "{\"prompt\":\"or not\",\"max_tokens\":24,\"temperature\":0.8,\"seed\":3}");
        List<String> expected;
        try (InferenceServer one = InferenceServer.start(InferenceWeights.load(ckpt, Quantization.NONE),
            ServeTestSupport.settings(), 1)) {
            expected = choices(one.port(), bodies);
        }
        int front = StagePartition.balanced(cfg, 2).endBlock(0);
        Config ours = tls("ours");
        try (StageHostServer host = StageHostServer.start(ckpt, "127.0.0.1", 0, ours);
             InferenceServer server = InferenceServer.start(InferenceWeights.load(ckpt, Quantization.NONE, 0, front),
                 ServeTestSupport.settings(), 2, links(ours, host))) {
            assertEquals(expected, choices(server.port(), bodies), "over TLS, the tokens of one stage");
        }

        for (Config hostConfig : List.of(tls("rogue"), ConfigFactory.load())) {
            try (StageHostServer host = StageHostServer.start(ckpt, "127.0.0.1", 0, hostConfig)) {
                IllegalStateException e = assertThrows(IllegalStateException.class, () -> InferenceServer.start(
                    InferenceWeights.load(ckpt, Quantization.NONE, 0, front), ServeTestSupport.settings(), 2,
                    links(ours, host)));
                assertTrue(e.getMessage().contains("were not wired") && e.getMessage().contains(host.hostPort()),
                    e.getMessage());
            }
        }
        ClusterSecurity.Tls off = StageLinks.from(ConfigFactory.load(), List.of()).tls();
        assertEquals(ClusterSecurity.Tls.off(), off);
    }
}
