package io.troupe.actors.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

class JobHandleTest {
    private static final JobEvent STARTED = new JobEvent.Started("0000002a", 0, 1, "rank 0", "on");
    private static final JobEvent STEP = new JobEvent.StepCompleted(1, 2, 5.5, Double.NaN,
        1.2, 1e-3f, 10, 100, 0, 0, 1.5, 0);
    private static final JobEvent FINISHED = new JobEvent.Finished(2, 5.4, Double.NaN, "");

    @Test
    @Timeout(10)
    void shouldCompleteTheOutcomeStageWithTheLastEventAndKeepItReadOnly() throws Exception {
        JobHandle h = new JobHandle();
        CompletionStage<JobEvent> outcome = h.outcome();
        CompletableFuture<String> composed = outcome.thenApply(e -> "ended: " + e.getClass().getSimpleName())
            .toCompletableFuture();
        h.publish(STARTED);
        h.publish(STEP);
        assertFalse(composed.isDone(), "not before the job ends");
        // A caller cannot end the job's outcome: what it can complete is a copy.
        assertThrows(UnsupportedOperationException.class,
            () -> ((CompletableFuture<JobEvent>) outcome).complete(STARTED));
        outcome.toCompletableFuture().complete(STARTED);
        assertFalse(composed.isDone(), "completing a copy ends nothing");
        h.publish(FINISHED);
        assertEquals("ended: Finished", composed.get(5, TimeUnit.SECONDS));
        assertSame(FINISHED, h.await(Duration.ofSeconds(1)));
    }

    @Test
    @Timeout(10)
    void shouldIsolateAListenerThatThrowsAndLogIt() throws Exception {
        JobHandle h = new JobHandle();
        List<JobEvent> before = new ArrayList<>();
        List<JobEvent> after = new ArrayList<>();
        PrintStream stderr = System.err;
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        System.setErr(new PrintStream(log, true, StandardCharsets.UTF_8));
        try {
            h.onEvent(before::add);
            h.onEvent(e -> {
                throw new IllegalStateException("listener bug on " + e.getClass().getSimpleName());
            });
            h.onEvent(after::add);
            h.publish(STARTED);
            h.publish(STEP);
            h.publish(FINISHED);
            // Added late: the replay is isolated too.
            h.onEvent(e -> {
                throw new IllegalStateException("late listener bug");
            });
        } finally {
            System.setErr(stderr);
        }
        assertEquals(List.of(STARTED, STEP, FINISHED), before);
        assertEquals(List.of(STARTED, STEP, FINISHED), after, "listeners after the failing one still get every event");
        assertSame(FINISHED, h.outcome().toCompletableFuture().get(1, TimeUnit.SECONDS));
        String text = log.toString(StandardCharsets.UTF_8);
        assertTrue(text.contains("listener bug on Started") && text.contains("listener bug on Finished")
            && text.contains("late listener bug"), "each failure is logged with its cause: " + text);
    }

    /** Exactly one end reaches the listeners and the outcome: anything after it (a late local end) is dropped. */
    @Test
    @Timeout(10)
    void shouldDeliverNothingAfterTheEnd() throws Exception {
        JobHandle h = new JobHandle();
        List<JobEvent> seen = new ArrayList<>();
        h.onEvent(seen::add);
        h.publish(STARTED);
        h.publish(STEP);
        TimeoutException early = assertThrows(TimeoutException.class, () -> h.await(Duration.ofMillis(1)));
        assertTrue(early.getMessage().contains("did not end within 1 ms"), early.getMessage());
        h.publish(FINISHED);
        h.endHere("closed");
        h.publish(STEP);
        assertEquals(List.of(STARTED, STEP, FINISHED), seen);
        assertEquals(1, h.steps().size());
        assertSame(FINISHED, h.await(Duration.ofSeconds(1)));

        JobHandle open = new JobHandle();
        open.publish(STARTED);
        open.publish(STEP);
        open.endHere("the Troupe closed");
        assertEquals(new JobEvent.Failed("the Troupe closed", 1, 0), open.await(Duration.ofSeconds(1)),
            "a local end names the last step and epoch the handle saw");
    }

    /** A real embedded cluster: cancel() ends a long job on the cluster, which then runs the next job. */
    @Test
    @Timeout(180)
    void shouldCancelARunningJobOnTheCluster() throws Exception {
        try (Troupe troupe = Troupe.local(1, 1)) {
            TrainingJob.Builder tiny = TrainingJob.builder().model("tiny").layout("1x1").batchSize(2)
                .lr(1e-3f, 1e-4f, 1)
                .validation(0, 1).device("cpu");
            JobHandle long1 = troupe.submit(tiny.steps(1_000_000).build());
            CompletableFuture<JobEvent> firstStep = new CompletableFuture<>();
            long1.onEvent(e -> {
                if (e instanceof JobEvent.StepCompleted) {
                    firstStep.complete(e);
                }
            });
            firstStep.get(60, TimeUnit.SECONDS);
            long1.cancel();
            JobEvent.Failed end = assertInstanceOf(JobEvent.Failed.class,
                long1.outcome().toCompletableFuture().get(60, TimeUnit.SECONDS));
            assertTrue(end.reason().startsWith("cancelled"), end.reason());
            assertTrue(end.lastCommittedStep() < 1_000_000, "ended early: " + end);
            long1.cancel(); // after the end: nothing happens

            JobEvent next = troupe.submit(tiny.steps(2).build()).await(Duration.ofSeconds(60));
            assertInstanceOf(JobEvent.Finished.class, next, "the cluster runs the next job: " + next);
        }
    }
}
