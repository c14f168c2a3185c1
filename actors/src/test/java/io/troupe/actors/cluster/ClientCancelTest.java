package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.troupe.actors.api.JobEvent;
import io.troupe.actors.api.JobHandle;
import io.troupe.actors.api.TrainingJob;
import io.troupe.actors.api.Troupe;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A client asks to cancel its job while its only seed is away: stopped cleanly and started again on its port (a
 * rolling restart), while the job runs on another node, which hosts the coordinator. The job is cancelled once the
 * seed is back: the client's link holds the message until the new node answers, and the client sends it again until
 * the job ends ({@link CancellerTest} holds the resending to a gateway that loses the first ones).
 */
@Timeout(150)
class ClientCancelTest {
    private final List<AutoCloseable> open = new ArrayList<>();

    @AfterEach
    void closeAll() throws Exception {
        for (int i = open.size() - 1; i >= 0; i--) {
            open.get(i).close();
        }
    }

    private TroupeNode start(NodeSettings s, Config base) {
        TroupeNode n = TroupeNode.start(s, base, null);
        open.add(n);
        return n;
    }

    @Test
    void shouldCancelThroughASeedStartedAgainOnItsPortAfterItStoppedCleanly() throws Exception {
        Config base = ConfigFactory.load();
        NodeSettings settings = NodeSettings.from(base);
        // the oldest member hosts the coordinator and the worker; the client's only door is another member, with
        // no workers and not the coordinator's host, so its restart leaves the job alone
        TroupeNode worker = start(settings.withPort(0).withRoles(List.of("worker", "coordinator"), 1)
            .withSeeds(List.of()), base);
        TroupeNode seed = TroupeNode.start(settings.withPort(0).withRoles(List.of("coordinator"), 0)
            .withSeeds(List.of(worker.hostPort())), base, null);
        String seedAt = seed.hostPort();
        int seedPort = Integer.parseInt(seedAt.substring(seedAt.lastIndexOf(':') + 1));
        TroupeNode client = start(settings.withPort(0).withRoles(List.of(), 0).withSeeds(List.of(seedAt)), base);

        TrainingJob job = TrainingJob.builder().model("tiny").layout("1x1").schedule("1f1b").microbatches(2)
            .batchSize(4).steps(1_000_000).lr(3e-3f, 3e-4f, 2).gradClip(1f).seed(5).stepTimeoutMs(60_000)
            .validation(0, 1).device("cpu").build();
        CountDownLatch stepping = new CountDownLatch(1);
        JobHandle h = Troupe.using(client).submit(job);
        h.onEvent(e -> {
            if (e instanceof JobEvent.StepCompleted) {
                stepping.countDown();
            }
        });
        assertTrue(stepping.await(60, TimeUnit.SECONDS), "the job is training on the worker's node");

        seed.close();                                    // a clean stop: its system tells the client it shuts down
        h.cancel();                                      // the only seed is away
        TroupeNode again = start(settings.withPort(seedPort).withRoles(List.of("coordinator"), 0)
            .withSeeds(List.of(worker.hostPort())), base);
        assertTrue(again.hostPort().equals(seedAt), again.hostPort());
        JobEvent end = h.await(Duration.ofSeconds(60));
        JobEvent.Failed f = assertInstanceOf(JobEvent.Failed.class, end, String.valueOf(end));
        assertTrue(f.reason().startsWith("cancelled") && f.reason().contains("by the submitter"), f.reason());
    }
}
