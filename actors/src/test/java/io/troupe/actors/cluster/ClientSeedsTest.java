package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.troupe.actors.api.JobEvent;
import io.troupe.actors.api.Troupe;
import io.troupe.runtime.testkit.RefusingPort;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A client submits through the first seed whose job gateway answers, trying each in turn for a
 * bounded wait, round after round up to a deadline: a dead first seed costs that wait, not the job;
 * no seed answering by the deadline fails the job unsent, naming every seed tried; a job answered at
 * once is sent to one node, once.
 */
@Timeout(120)
class ClientSeedsTest {
    private static final String OFF_LIST = "com.example.UnlistedFactory";
    /**
     * A bound on how long a wait below took, s: half of {@link TroupeNode#SEEDS_DEADLINE}, the wait of a client
     * that ignored the shorter one it was given, and several times each wait the tests give. Load only delays when
     * a wait ends, so a wait that ended through its own deadline stays under it; the outcome itself (which seed
     * took the job, a job failed unsent) is what each test checks exactly.
     */
    private static final double HANG_S = TroupeNode.SEEDS_DEADLINE.toSeconds() / 2.0;
    private final List<AutoCloseable> open = new ArrayList<>();

    @AfterEach
    void closeAll() throws Exception {
        for (int i = open.size() - 1; i >= 0; i--) {
            open.get(i).close();
        }
    }

    /** host:port where nothing listens (a dead node's port: connections are refused), held so for the test. */
    private String deadSeed() {
        RefusingPort dead = RefusingPort.open();
        open.add(dead);
        return dead.hostPort();
    }

    private TroupeNode client(Config base, List<String> seeds) {
        TroupeNode c = TroupeNode.start(NodeSettings.from(base).withPort(0).withRoles(List.of(), 0).withSeeds(seeds),
            base, null);
        open.add(c);
        return c;
    }

    /** A job the node's gateway answers at once (its stage module is off the allow-list): no worker needed. */
    private static JobRequest refusedJob() {
        return new JobRequest("tiny", "1x1", 1, "1f1b", 2, 8, 5, 3e-3f, 3e-4f, 1, 1.0f, 9, "", "", 0, "",
            60_000, 0, 1, 1L << 20, "cpu", OFF_LIST);
    }

    @Test
    void shouldSubmitThroughTheNextSeedWhenTheFirstIsDead() throws Exception {
        Config base = ConfigFactory.load();
        TroupeNode node = TroupeNode.start(NodeSettings.from(base).withPort(0).withSeeds(List.of())
            .withRoles(List.of("coordinator"), 0), base, null);
        open.add(node);
        long before = node.refusedInputs().count(RefusedInputs.Reason.STAGE_MODULE_NOT_ALLOWED);
        TroupeNode c = client(base, List.of(deadSeed(), node.hostPort()));
        long t0 = System.nanoTime();
        JobEvent end = Troupe.using(c).submit(refusedJob()).await(Duration.ofSeconds(30));
        double s = (System.nanoTime() - t0) / 1e9;
        System.out.printf("dead first seed: the second seed's node answered after %.1f s%n", s);
        JobEvent.Failed f = assertInstanceOf(JobEvent.Failed.class, end, String.valueOf(end));
        assertTrue(f.reason().contains(OFF_LIST), "the job reached the live node, whose gateway refused it: "
            + f.reason());
        assertEquals(before + 1, node.refusedInputs().count(RefusedInputs.Reason.STAGE_MODULE_NOT_ALLOWED),
            "sent to one node, once");
        assertTrue(s < HANG_S, "bounded by one seed's wait (" + TroupeNode.SEED_ANSWER_WAIT.toSeconds()
            + " s), not the whole deadline: " + s + " s");
    }

    /** One seed is the cluster's only known door: the job goes to it once it answers, with no per-try wait. */
    @Test
    void shouldSendThroughASingleSeed() throws Exception {
        Config base = ConfigFactory.load();
        TroupeNode node = TroupeNode.start(NodeSettings.from(base).withPort(0).withSeeds(List.of())
            .withRoles(List.of("coordinator"), 0), base, null);
        open.add(node);
        TroupeNode c = client(base, List.of(node.hostPort()));
        JobEvent end = Troupe.using(c).submit(refusedJob()).await(Duration.ofSeconds(30));
        assertTrue(assertInstanceOf(JobEvent.Failed.class, end).reason().contains(OFF_LIST), String.valueOf(end));
    }

    /** A single seed where no node listens: the job fails unsent at the deadline, naming it, and connect says so. */
    @Test
    void shouldFailUnsentWhenASingleSeedDoesNotAnswer() throws Exception {
        Config base = ConfigFactory.load();
        String a = deadSeed();
        TroupeNode c = client(base, List.of(a));
        long t0 = System.nanoTime();
        assertFalse(c.connect(Duration.ofSeconds(2)), "nothing listens at " + a);
        double s = (System.nanoTime() - t0) / 1e9;
        assertTrue(s >= 1.5 && s < HANG_S, "connect bounded by its 2 s deadline: " + s + " s");
        java.util.concurrent.CompletableFuture<JobEvent> end = new java.util.concurrent.CompletableFuture<>();
        c.submit(refusedJob(), e -> end.complete(e), Duration.ofSeconds(1), Duration.ofSeconds(2));
        JobEvent.Failed f = assertInstanceOf(JobEvent.Failed.class, end.get(30, java.util.concurrent.TimeUnit.SECONDS));
        assertTrue(f.reason().contains(a) && f.reason().contains("not submitted"), f.reason());
    }

    @Test
    void shouldFailNamingEverySeedWhenNoneAnswers() throws Exception {
        Config base = ConfigFactory.load();
        String a = deadSeed();
        String b = deadSeed();
        TroupeNode c = client(base, List.of(a, b));
        long t0 = System.nanoTime();
        java.util.concurrent.CompletableFuture<JobEvent> end = new java.util.concurrent.CompletableFuture<>();
        c.submit(refusedJob(), e -> end.complete(e), Duration.ofSeconds(1), Duration.ofSeconds(5));
        JobEvent.Failed f = assertInstanceOf(JobEvent.Failed.class, end.get(30, java.util.concurrent.TimeUnit.SECONDS));
        double s = (System.nanoTime() - t0) / 1e9;
        assertTrue(f.reason().contains(a) && f.reason().contains(b) && f.reason().contains("not submitted"),
            f.reason());
        assertTrue(f.reason().contains("within 5 s (1000 ms per try)"), "the deadline and wait given: " + f.reason());
        assertTrue(s >= 4.5 && s < HANG_S, "tried until the 5 s deadline, then failed: " + s + " s");
    }
}
