package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.troupe.actors.api.JobEvent;
import io.troupe.actors.api.JobHandle;
import io.troupe.actors.api.TrainingJob;
import io.troupe.actors.api.Troupe;
import io.troupe.models.data.Corpora;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.optim.AdamWConfig;
import io.troupe.models.train.TrainConfig;
import io.troupe.models.train.Trainer;
import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.transport.DropReason;
import io.troupe.runtime.transport.FrameAuthKey;
import io.troupe.runtime.transport.TransportNode;
import io.troupe.runtime.transport.TransportSettings;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * {@code troupe.transport.auth-key} end to end: two nodes with a media driver each, so their workers
 * exchange activations and gradients over UDP, every frame tagged. With the same key the pipeline
 * trains to the single-device losses and nothing is refused; with different keys every frame between
 * them is refused as {@code BAD_MAC} and counted. The key is read by value or from a file and never
 * printed.
 */
@Timeout(180)
class AuthenticatedDataPlaneTest {
    private final List<AutoCloseable> open = new ArrayList<>();

    @AfterEach
    void closeAll() throws Exception {
        for (int i = open.size() - 1; i >= 0; i--) {
            open.get(i).close();
        }
    }

    @ParameterizedTest(name = "layout {0}, {1} worker(s) per node")
    @CsvSource({"1x2, 1", "2x2, 2", "1x1x2, 1"})
    void shouldTrainToTheSingleDeviceLossesWithEveryUdpFrameAuthenticated(String layout, int workersPerNode)
        throws Exception {
        FrameAuthKey key = FrameAuthKey.ofValue("one key for the whole cluster");
        TransportNode ta = transport(key);
        TransportNode tb = transport(key);
        TroupeNode first = pipeline(ta, tb, workersPerNode);
        // 2x2: activations, gradient all-reduce, the norm agreement and snapshots all cross the two drivers, several
        // senders of one node to the other's workers at once; 1x1x2: the tensor-parallel collectives
        JobHandle h = Troupe.using(first).submit(job(layout, 5, 30_000));
        JobEvent end = h.await(Duration.ofSeconds(150));
        assertInstanceOf(JobEvent.Finished.class, end, "job ended with " + end);
        assertEquals(5, h.steps().size());
        TrainConfig tc = new TrainConfig(GptConfig.tiny(), 4, 1, 5, 3e-3f, 3e-4f, 2, 1.0f, 5, 0, 1, 0,
            AdamWConfig.defaults());
        try (CpuDevice dev = new CpuDevice(1); Trainer t = new Trainer(tc, dev, Corpora.builtIn())) {
            for (JobEvent.StepCompleted s : h.steps()) {
                double ref = t.trainStep().loss();
                System.out.printf("authenticated pipeline step %d: cluster loss %.7f, single-device %.7f%n", s.step(),
                    s.loss(), ref);
                assertEquals(ref, s.loss(), 1e-5 * ref, "step " + s.step());
            }
        }
        for (TransportNode t : List.of(ta, tb)) {
            assertEquals(0, t.framesDropped(DropReason.BAD_MAC) + t.framesDropped(DropReason.MISSING_MAC)
                + t.framesDropped(DropReason.REPLAYED), "refused frames with the right key");
        }
    }

    @Test
    void shouldRefuseAndCountEveryFrameFromANodeWithAnotherKey() throws Exception {
        TransportNode ta = transport(FrameAuthKey.ofValue("one key for the whole cluster"));
        TransportNode tb = transport(FrameAuthKey.ofValue("a key nobody else shares"));
        TroupeNode first = pipeline(ta, tb, 1);
        Troupe.using(first).submit(job("1x2", 2, 5_000));
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(90);
        while (ta.framesDropped(DropReason.BAD_MAC) + tb.framesDropped(DropReason.BAD_MAC) == 0) {
            assertTrue(System.nanoTime() < deadline, "no frame refused between nodes with different keys");
            Thread.sleep(50); // polling a counter another thread raises; the deadline bounds it
        }
        System.out.printf("different keys: BAD_MAC %d and %d%n", ta.framesDropped(DropReason.BAD_MAC),
            tb.framesDropped(DropReason.BAD_MAC));
    }

    @Test
    void shouldReadTheKeyByValueOrFromAFileAndNeverPrintIt(@TempDir Path dir) throws Exception {
        String secret = "correct-horse-battery-staple";
        Config byValue = ConfigFactory.parseString("troupe.transport.auth-key = \"" + secret + "\"")
            .withFallback(ConfigFactory.load());
        TransportSettings s = TransportConfig.from(byValue);
        assertNotNull(s.authKey());
        assertFalse(s.toString().contains(secret), s.toString());
        Path file = dir.resolve("auth.key");
        Files.writeString(file, secret + "\n");
        Config byFile = ConfigFactory.parseString("troupe.transport.auth-key-file = \"" + file + "\"")
            .withFallback(ConfigFactory.load());
        assertEquals(s.authKey(), TransportConfig.from(byFile).authKey(), "the same key by value and from a file");
        assertNull(TransportConfig.from(ConfigFactory.load()).authKey(), "off by default");
        IllegalArgumentException both = assertThrows(IllegalArgumentException.class,
            () -> TransportConfig.from(ConfigFactory.parseString("troupe.transport.auth-key-file = \"" + file + "\"")
                .withFallback(byValue)));
        assertTrue(both.getMessage().contains("not both") && !both.getMessage().contains(secret), both.getMessage());
        IllegalArgumentException tooShort = assertThrows(IllegalArgumentException.class, () -> TransportConfig.from(
            ConfigFactory.parseString("troupe.transport.auth-key = \"shorty\"").withFallback(ConfigFactory.load())));
        assertTrue(tooShort.getMessage().contains("auth-key") && tooShort.getMessage().contains("length=6")
            && !tooShort.getMessage().contains("shorty"), tooShort.getMessage());
    }

    private TransportNode transport(FrameAuthKey key) {
        TransportNode t = TransportNode.launch(TransportSettings.defaults().withAuthKey(key),
            Throwable::printStackTrace);
        open.add(t);
        return t;
    }

    /** Two nodes of {@code workers} workers each, on their own media drivers: tensors between them cross UDP. */
    private TroupeNode pipeline(TransportNode ta, TransportNode tb, int workers) {
        NodeSettings base = NodeSettings.from(ConfigFactory.load()).withPort(0);
        TroupeNode first = TroupeNode.start(base.withRoles(List.of("worker", "coordinator"), workers)
            .withSeeds(List.of()), ConfigFactory.load(), ta);
        open.add(first);
        open.add(TroupeNode.start(base.withRoles(List.of("worker"), workers).withSeeds(List.of(first.hostPort())),
            ConfigFactory.load(), tb));
        return first;
    }

    private static TrainingJob job(String layout, int steps, long stepTimeoutMs) {
        return TrainingJob.builder().model("tiny").layout(layout).schedule("1f1b").microbatches(2).batchSize(4)
            .steps(steps).lr(3e-3f, 3e-4f, 2).gradClip(1f).seed(5).stepTimeoutMs(stepTimeoutMs).validation(0, 1)
            .device("cpu").build();
    }
}
