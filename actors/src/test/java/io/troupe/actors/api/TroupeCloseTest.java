package io.troupe.actors.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import io.troupe.actors.cluster.EmbeddedNodes;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Closing a Troupe while its job runs: the job ends (cancelled), the handle completes, nothing is left behind. */
class TroupeCloseTest {
    private static final TrainingJob.Builder TINY = TrainingJob.builder().model("tiny").batchSize(2)
        .lr(1e-3f, 1e-4f, 1).validation(0, 1).device("cpu");

    @Test
    @Timeout(180)
    void shouldEndTheRunningJobAndLeaveNoThreadOrDriverFileBehind() throws Exception {
        Set<Thread> threadsBefore = threads();
        Set<String> shmBefore = driverFiles();
        Troupe troupe = Troupe.local(2, 1);
        assertTrue(driverFiles().size() > shmBefore.size(), "the embedded media driver lives in /dev/shm");
        List<JobEvent> events = new CopyOnWriteArrayList<>();
        JobHandle h = troupe.submit(TINY.layout("1x2").microbatches(2).steps(1_000_000).build()).onEvent(events::add);
        firstStep(h);

        troupe.close();
        JobEvent.Failed end = assertInstanceOf(JobEvent.Failed.class,
            h.outcome().toCompletableFuture().get(1, TimeUnit.SECONDS), "the handle ends with the Troupe");
        assertTrue(end.reason().startsWith("cancelled"), "a user's stop, not a lost member: " + end.reason());
        assertEquals(1, events.stream().filter(e -> e instanceof JobEvent.Failed || e instanceof JobEvent.Finished)
            .count(), "exactly one end: " + events);
        assertTrue(events.stream().noneMatch(e -> e instanceof JobEvent.Recovering), "no recovery: " + events);

        troupe.close(); // a second close does nothing
        IllegalStateException late = assertThrows(IllegalStateException.class, () -> troupe.submit(TINY.build()));
        assertTrue(late.getMessage().contains("closed"), late.getMessage());
        assertEquals(shmBefore, driverFiles(), "the media driver's directory is removed");
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        for (Thread t : leftOver(threadsBefore)) {   // they end on their own once the nodes terminated
            t.join(Math.max(1, TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime())));
        }
        Set<String> left = leftOver(threadsBefore).stream().map(Thread::getName).collect(Collectors.toSet());
        assertEquals(Set.of(), left, "no actor system, driver or worker thread outlives close()");
    }

    /** A client made by join(): closing it cancels its job, so the cluster is free for the next one. */
    @Test
    @Timeout(180)
    void shouldCancelAJoinedClientsJobOnClose() throws Exception {
        try (EmbeddedNodes cluster = EmbeddedNodes.start(1, 1)) {
            Troupe client = Troupe.join(ConfigFactory.parseString(
                "troupe.cluster.seeds = [\"" + cluster.first().hostPort() + "\"]"));
            JobHandle h = client.submit(TINY.layout("1x1").steps(1_000_000).build());
            firstStep(h);
            client.close();
            JobEvent.Failed end = assertInstanceOf(JobEvent.Failed.class,
                h.outcome().toCompletableFuture().get(1, TimeUnit.SECONDS));
            assertTrue(end.reason().startsWith("cancelled"), end.reason());

            Troupe using = Troupe.using(cluster.first());
            JobEvent next = using.submit(TINY.layout("1x1").steps(2).build()).await(Duration.ofSeconds(60));
            assertInstanceOf(JobEvent.Finished.class, next, "the cluster runs the next job: " + next);
            using.close(); // leaves the node running
            assertThrows(IllegalStateException.class, () -> using.submit(TINY.build()));
            JobEvent after = Troupe.using(cluster.first()).submit(TINY.layout("1x1").steps(1).build())
                .await(Duration.ofSeconds(60));
            assertInstanceOf(JobEvent.Finished.class, after, "the node still runs jobs: " + after);
        }
    }

    private static void firstStep(JobHandle h) throws Exception {
        CompletableFuture<JobEvent> first = new CompletableFuture<>();
        h.onEvent(e -> {
            if (e instanceof JobEvent.StepCompleted || e instanceof JobEvent.Failed) {
                first.complete(e);
            }
        });
        assertInstanceOf(JobEvent.StepCompleted.class, first.get(60, TimeUnit.SECONDS));
    }

    /** Live threads. */
    private static Set<Thread> threads() {
        return Thread.getAllStackTraces().keySet().stream().filter(Thread::isAlive).collect(Collectors.toSet());
    }

    /**
     * Threads started since {@code before} that are still alive, less the JVM-wide daemons a first use starts
     * once (the JDK's cleaner and process reaper, JavaCPP's deallocator, the data plane's shared grace timer).
     */
    private static List<Thread> leftOver(Set<Thread> before) {
        return threads().stream().filter(t -> !before.contains(t))
            .filter(t -> !(t.isDaemon() && (t.getName().startsWith("Cleaner-")
                || t.getName().startsWith("JavaCPP Deallocator") || t.getName().startsWith("process reaper")
                || t.getName().equals("troupe-peer-lost-grace"))))
            .toList();
    }

    /** This process's media driver directories in /dev/shm. */
    private static Set<String> driverFiles() throws IOException {
        Path shm = Path.of("/dev/shm");
        if (!Files.isDirectory(shm)) {
            return Set.of();
        }
        String mine = "troupe-" + ProcessHandle.current().pid() + "-";
        try (Stream<Path> s = Files.list(shm)) {
            return s.map(p -> p.getFileName().toString()).filter(n -> n.startsWith(mine))
                .collect(Collectors.toCollection(TreeSet::new));
        }
    }
}
