package io.troupe.actors.serve;

import static io.troupe.actors.serve.ServeTestSupport.metric;
import static io.troupe.actors.serve.ServeTestSupport.send;
import static io.troupe.actors.serve.TwoPrompts.bodies;
import static io.troupe.actors.serve.TwoPrompts.offline;
import static io.troupe.actors.serve.TwoPrompts.texts;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.troupe.models.infer.InferenceWeights;
import io.troupe.models.infer.Quantization;
import io.troupe.models.parallel.StagePartition;
import io.troupe.runtime.transport.TransportNode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * A process of a pipelined server stopped past Aeron's driver timeout (SIGSTOP, a paused virtual machine) finds
 * its Aeron client closed once it runs again: the client closes itself when its conductor misses its service
 * interval, and a closed client opens no publication or subscription again. Here the client of a stage host, then
 * of the server, is closed as that timeout closes it, on a 1x2 server on 127.0.0.1 with stage 1 on an in-process
 * stage host: the pipeline goes down, is wired again on a data plane launched anew ({@link DataPlane}), and the
 * requests are answered with the tokens they have offline.
 */
@Timeout(120)
class DataPlaneRelaunchTest {

    @TempDir
    Path tmp;

    private final List<AutoCloseable> open = new ArrayList<>();

    @AfterEach
    void closeAll() {
        for (int i = open.size() - 1; i >= 0; i--) {
            try {
                open.get(i).close();
            } catch (Exception e) {
                System.out.println("closing: " + e);
            }
        }
    }

    /** Loss timeout 2 s, wirings retried every 200 ms. */
    private static Config config() {
        return ConfigFactory.parseString("troupe.serve.stage-link { loss-timeout = 2s, connect-timeout = 30s,"
            + " retry-interval = 200ms }").withFallback(ConfigFactory.load());
    }

    private InferenceServer serve(Path ckpt, StageHostServer host) {
        int front = StagePartition.balanced(ServeTestSupport.CFG, 2).endBlock(0);
        InferenceServer s = InferenceServer.start(InferenceWeights.load(ckpt, Quantization.NONE, 0, front),
            ServeTestSupport.settings(), 2, StageLinks.from(config(), List.of(host.hostPort())));
        open.add(s);
        return s;
    }

    private StageHostServer host(Path ckpt) {
        StageHostServer h = StageHostServer.start(ckpt, "127.0.0.1", 0, config());
        open.add(h);
        return h;
    }

    /** Closes the Aeron client of {@code plane}'s node, as a stop past Aeron's driver timeout does; that node. */
    private static TransportNode closeClient(DataPlane plane) {
        TransportNode node = plane.current();
        node.aeron().close();
        assertTrue(node.aeron().isClosed());
        return node;
    }

    /** Serves the prompts once the data plane's client is closed, and checks the pipeline was wired again. */
    private static void assertServedAgain(int port, List<String> expected, DataPlane plane, TransportNode closed)
        throws Exception {
        assertEquals(expected, texts(send(port, bodies())), "after the client closed: the same tokens");
        assertNotSame(closed, plane.current(), "the data plane was launched again");
        String metrics = ServeTestSupport.get(port, "/metrics").body();
        assertTrue(metric(metrics, "troupe_serve_pipeline_pauses_total") >= 1, "the pipeline went down: " + metrics);
        assertEquals(1.0, metric(metrics, "troupe_serve_pipeline_up"), metrics);
        assertEquals(0.0, metric(metrics, "troupe_serve_finished_total{reason=\"cancelled\"}"), metrics);
        assertEquals(200, ServeTestSupport.get(port, "/health").statusCode());
    }

    /** Which side's data plane a test closes the Aeron client of. */
    enum Side {
        STAGE_HOST, SERVER
    }

    @ParameterizedTest(name = "the {0}'s client closed")
    @EnumSource(Side.class)
    void shouldWireAgainASideWhoseAeronClientClosed(Side side) throws Exception {
        Path ckpt = ServeTestSupport.twoStageCheckpoint(tmp.resolve("ckpt"));
        List<String> expected = offline(ckpt);
        StageHostServer host = host(ckpt);
        InferenceServer server = serve(ckpt, host);
        int port = server.port();
        assertEquals(expected, texts(send(port, bodies())), "before: the tokens they have offline");

        DataPlane plane = side == Side.STAGE_HOST ? host.dataPlane() : server.pipelineDataPlane();
        TransportNode closed = closeClient(plane);
        assertServedAgain(port, expected, plane, closed);
    }
}
