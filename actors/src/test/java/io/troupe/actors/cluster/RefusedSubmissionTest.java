package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.troupe.actors.api.JobEvent;
import io.troupe.actors.api.JobHandle;
import io.troupe.actors.api.Troupe;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A job refused as it arrives (a path outside {@code troupe.cluster.allowed-roots}, a stage-module
 * factory off {@code troupe.cluster.allowed-stage-modules}) is answered at once with a
 * {@link JobEvent.Failed} naming what was refused, whether it came from a client that does not
 * join (refused at deserialization on the node) or from the node itself (refused by its gateway).
 * The answer must come well before the job's step timeout (60 s here), which is what a dropped
 * submission would wait for.
 */
@Timeout(120)
class RefusedSubmissionTest {
    private static final String OFF_LIST = "com.example.UnlistedFactory";
    private static final Duration ANSWER = Duration.ofSeconds(20);

    private static TroupeNode node;
    private static TroupeNode client;

    @BeforeAll
    static void start() {
        Config base = ConfigFactory.load();
        // A coordinator-only node: it moves no tensors and hosts no workers, so no job ever starts.
        node = TroupeNode.start(NodeSettings.from(base).withPort(0).withSeeds(List.of())
            .withRoles(List.of("coordinator"), 0), base, null);
        client = TroupeNode.start(NodeSettings.from(base).withPort(0).withRoles(List.of(), 0)
            .withSeeds(List.of(node.hostPort())), base, null);
    }

    @AfterAll
    static void stop() {
        if (client != null) {
            client.close();
        }
        if (node != null) {
            node.close();
        }
    }

    private static JobRequest job(String dataPath, String moduleFactory) {
        return new JobRequest("tiny", "1x1", 1, "1f1b", 2, 8, 5, 3e-3f, 3e-4f, 1, 1.0f, 9, "", dataPath, 0, "",
            60_000, 0, 1, 1L << 20, "cpu", moduleFactory);
    }

    private static JobEvent.Failed refused(TroupeNode via, JobRequest job) throws Exception {
        JobHandle h = Troupe.using(via).submit(job);
        JobEvent end = h.await(ANSWER);
        return assertInstanceOf(JobEvent.Failed.class, end, String.valueOf(end));
    }

    @Test
    void shouldAnswerAClientWhosePathIsRefusedNamingThePath() throws Exception {
        long before = node.refusedInputs().count(RefusedInputs.Reason.PATH_OUTSIDE_ROOTS);
        JobEvent.Failed f = refused(client, job("/etc/passwd", ""));
        assertTrue(f.reason().contains("/etc/passwd") && f.reason().contains("allowed-roots")
            && f.reason().contains("before any work"), f.reason());
        assertEquals(before + 1, node.refusedInputs().count(RefusedInputs.Reason.PATH_OUTSIDE_ROOTS));
    }

    @Test
    void shouldAnswerAClientWhoseStageModuleIsOffTheListNamingTheClass() throws Exception {
        long before = node.refusedInputs().count(RefusedInputs.Reason.STAGE_MODULE_NOT_ALLOWED);
        JobEvent.Failed f = refused(client, job("", OFF_LIST));
        assertTrue(f.reason().contains(OFF_LIST) && f.reason().contains("allowed-stage-modules")
            && f.reason().contains("before any work"), f.reason());
        assertEquals(before + 1, node.refusedInputs().count(RefusedInputs.Reason.STAGE_MODULE_NOT_ALLOWED));
    }

    @Test
    void shouldRefuseAStageModuleOffTheListSubmittedOnTheNodeItself() throws Exception {
        JobEvent.Failed f = refused(node, job("", OFF_LIST));
        assertTrue(f.reason().contains(OFF_LIST) && f.reason().contains("allowed-stage-modules"), f.reason());
    }
}
