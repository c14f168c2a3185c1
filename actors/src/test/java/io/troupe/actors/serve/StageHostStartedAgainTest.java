package io.troupe.actors.serve;

import static io.troupe.actors.serve.ServeTestSupport.awaitHealth;
import static io.troupe.actors.serve.ServeTestSupport.send;
import static io.troupe.actors.serve.TwoPrompts.bodies;
import static io.troupe.actors.serve.TwoPrompts.texts;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.troupe.models.infer.InferenceWeights;
import io.troupe.models.infer.Quantization;
import io.troupe.models.parallel.StagePartition;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A stage host stopped cleanly (as an orchestrator's rolling restart stops it) and started again on its port well
 * after the server lost it. Its actor system says it is shutting down, and the control link quarantines that
 * address: a server that sent to its hosts by actor reference never reached the new host (every load dropped,
 * unanswered, for as long as it ran); sent by actor selection, the first heartbeat opens a handshake with the new
 * host and the pipeline is wired again.
 */
@Timeout(120)
class StageHostStartedAgainTest {
    /** Loss timeout 2 s (well past the quarantine of a host that shut down), wirings retried every 200 ms. */
    private static final Config CONFIG = ConfigFactory.parseString(
            "troupe.serve.stage-link { loss-timeout = 2s, connect-timeout = 30s, retry-interval = 200ms }")
        .withFallback(ConfigFactory.load()).resolve();

    @TempDir
    Path tmp;

    /**
     * The host is started again only once the server reports it lost (503 naming it: two seconds of silence,
     * after the quarantine of its shut-down system, which comes about one second after its notice). Bound: 20 s
     * from the new host's start to serving, against wirings that never completed before.
     */
    @Test
    void shouldServeAgainOnAHostStartedOnThePortOfOneThatShutDownAfterTheServerLostIt() throws Exception {
        Path ckpt = ServeTestSupport.twoStageCheckpoint(tmp.resolve("ckpt"));
        List<String> expected = TwoPrompts.offline(ckpt);
        StageHostServer host = StageHostServer.start(ckpt, "127.0.0.1", 0, CONFIG);
        StageHostServer again = null;
        String hostPort = host.hostPort();
        int tcp = Integer.parseInt(hostPort.substring(hostPort.lastIndexOf(':') + 1));
        int front = StagePartition.balanced(ServeTestSupport.CFG, 2).endBlock(0);
        try (InferenceServer server = InferenceServer.start(InferenceWeights.load(ckpt, Quantization.NONE, 0, front),
            ServeTestSupport.settings(), 2, StageLinks.from(CONFIG, List.of(hostPort)))) {
            int port = server.port();
            assertEquals(expected, texts(send(port, bodies())), "served on the stage host");

            host.close();
            String health = awaitHealth(port, 503, "\"status\":\"degraded\"", hostPort);
            System.out.println("lost: " + health);

            long t0 = System.nanoTime();
            again = StageHostServer.start(ckpt, "127.0.0.1", tcp, CONFIG);
            awaitHealth(port, h -> h.statusCode() == 200, 20_000);
            long ms = (System.nanoTime() - t0) / 1_000_000;
            System.out.println("serving again " + ms + " ms after the new host started");
            assertEquals(expected, texts(send(port, bodies())), "the new host serves: the offline tokens");
            assertTrue(ServeTestSupport.get(port, "/health").body().contains("\"status\":\"ok\""));
        } finally {
            host.close();
            if (again != null) {
                again.close();
            }
        }
    }
}
