package io.troupe.actors.serve;

import static io.troupe.actors.serve.ServeTestSupport.choices;
import static io.troupe.actors.serve.ServeTestSupport.send;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.troupe.actors.cluster.TestCertificates;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.infer.InferenceWeights;
import io.troupe.models.infer.Quantization;
import io.troupe.models.parallel.StagePartition;
import java.nio.file.Path;
import java.util.List;
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
        TestCertificates.make(dir.resolve("ours"));
        TestCertificates.make(dir.resolve("rogue"));
    }

    private static Config tls(String ca) {
        return TestCertificates.tls(dir.resolve(ca)).withFallback(ConfigFactory.parseString(String.join("\n",
            "troupe.serve.stage-link.loss-timeout = 2s",
            "troupe.serve.stage-link.connect-timeout = 8s",
            "troupe.serve.stage-link.retry-interval = 200ms"))).withFallback(ConfigFactory.load()).resolve();
    }

    private static StageLinks links(Config config, StageHostServer host) {
        StageLinks l = StageLinks.from(config, List.of(host.hostPort()));
        assertEquals(config.getBoolean("troupe.cluster.tls.enabled"), l.tls().enabled());
        return l;
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
            expected = choices(send(one.port(), bodies));
        }
        int front = StagePartition.balanced(cfg, 2).endBlock(0);
        Config ours = tls("ours");
        try (StageHostServer host = StageHostServer.start(ckpt, "127.0.0.1", 0, ours);
             InferenceServer server = InferenceServer.start(InferenceWeights.load(ckpt, Quantization.NONE, 0, front),
                 ServeTestSupport.settings(), 2, links(ours, host))) {
            assertEquals(expected, choices(send(server.port(), bodies)), "over TLS, the tokens of one stage");
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
        assertFalse(StageLinks.from(ConfigFactory.load(), List.of()).tls().enabled(), "TLS is off by default");
    }
}
