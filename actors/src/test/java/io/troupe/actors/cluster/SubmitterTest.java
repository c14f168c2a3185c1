package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.actors.api.JobEvent;
import io.troupe.actors.api.TrainingJob;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A job's submission is sent again until the coordinator answers it: a gateway that loses the first ones (its node
 * stopping as they pass, a coordinator hand-over) still gets one, and the submitter stops sending once the listener
 * heard the job start, when the listener stops, or at its bound when nothing ever answers.
 */
@Timeout(30)
class SubmitterTest {
    private static final JobRequest JOB = TrainingJob.builder().model("tiny").layout("1x1").microbatches(2)
        .batchSize(4).steps(5).build().request();

    private final ActorSystem<Void> system = ActorSystem.create(Behaviors.empty(), "submitter-test");
    private final AtomicBoolean heard = new AtomicBoolean();
    private final List<JobEvent> events = new CopyOnWriteArrayList<>();

    @AfterEach
    void stop() throws Exception {
        system.terminate();
        system.getWhenTerminated().toCompletableFuture().get(10, TimeUnit.SECONDS);
    }

    /** The submitter's listener, as {@link TroupeNode#submit} makes it. */
    private ActorRef<JobEvent> listener() {
        return system.systemActorOf(TroupeNode.listener(events::add, heard,
            new java.util.concurrent.atomic.AtomicLong()), "listener", Props.empty());
    }

    /** A gateway that loses the first {@code lost} submissions and answers each later one with {@code answer}. */
    private ActorRef<CoordinatorActor.Command> gateway(int lost, AtomicInteger received, JobEvent answer) {
        return gateway(lost, received, n -> answer);
    }

    /** A gateway that loses the first {@code lost} submissions and answers copy {@code n} (1-based) as told. */
    private ActorRef<CoordinatorActor.Command> gateway(int lost, AtomicInteger received,
                                                       java.util.function.IntFunction<JobEvent> answer) {
        return system.systemActorOf(Behaviors.<CoordinatorActor.Command>receive((ctx, m) -> {
            int n = m instanceof CoordinatorActor.SubmitJob ? received.incrementAndGet() : 0;
            if (m instanceof CoordinatorActor.SubmitJob s && n > lost) {
                s.replyTo().tell(answer.apply(n));
            }
            return Behaviors.same();
        }), "gateway", Props.empty());
    }

    /** Starts {@code submitter}; the future completes when it stops. */
    private CompletableFuture<Void> started(Behavior<Object> submitter) {
        return CancellerTest.watched(system, submitter);
    }

    private Behavior<Object> submitter(ActorRef<JobEvent> listener, ActorRef<CoordinatorActor.Command> gateway,
                                       Duration giveUpAfter) {
        return TroupeNode.submitter(new CoordinatorActor.SubmitJob(JOB, listener), gateway, List.of(gateway),
            heard::get, Duration.ofMillis(200), giveUpAfter, null);
    }

    /**
     * Two copies lost, the third and fourth answered as accepted (the coordinator took the job, then its repeat), the
     * fifth with the job's start: exactly five sent, and the listener passes on one Accepted.
     */
    @Test
    void shouldSendAgainUntilTheJobHasStartedThenStop() throws Exception {
        AtomicInteger received = new AtomicInteger();
        JobEvent.Started started = new JobEvent.Started("0000002a", 1, 1, "rank 0 -> x", "on");
        ActorRef<CoordinatorActor.Command> gateway = gateway(2, received,
            n -> n < 5 ? new JobEvent.Accepted("0000002a", 1, n > 3) : started);
        CompletableFuture<Void> stopped = started(submitter(listener(), gateway, Duration.ofSeconds(20)));
        stopped.get(10, TimeUnit.SECONDS);
        assertEquals(5, received.get(), "two lost, two accepted, the fifth answered with the start, none after it");
        assertEquals(List.of(new JobEvent.Accepted("0000002a", 1, false), started), events);
    }

    /**
     * With a watch, a started job's submission goes on being sent (every 300 ms here) while the job runs, each repeat
     * answered as a repeat (which the listener does not pass on), and stops when the listener stops at the job's end.
     */
    @Test
    void shouldWatchAStartedJobByRepeatingItsSubmissionUntilItEnds() throws Exception {
        AtomicInteger received = new AtomicInteger();
        JobEvent.Started started = new JobEvent.Started("0000002a", 1, 1, "rank 0 -> x", "on");
        java.util.concurrent.atomic.AtomicLong heardNs = new java.util.concurrent.atomic.AtomicLong(System.nanoTime());
        ActorRef<JobEvent> listener = system.systemActorOf(TroupeNode.listener(events::add, heard, heardNs),
            "listener", Props.empty());
        ActorRef<CoordinatorActor.Command> gateway = gateway(0, received,
            n -> n == 2 ? started : new JobEvent.Accepted("0000002a", 1, n > 1));
        CompletableFuture<Void> stopped = started(TroupeNode.submitter(new CoordinatorActor.SubmitJob(JOB, listener),
            gateway, List.of(gateway), heard::get, Duration.ofMillis(100), Duration.ofSeconds(20),
            new TroupeNode.Watch(Duration.ofMillis(300), Duration.ofSeconds(30), heardNs::get)));
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (received.get() < 6 && System.nanoTime() < deadline) {
            Thread.sleep(20);
        }
        assertTrue(received.get() >= 6, "repeated while the job runs: " + received.get());
        assertFalse(stopped.isDone(), "still watching");
        assertEquals(List.of(new JobEvent.Accepted("0000002a", 1, false), started), events,
            "the repeats' answers are not passed on");
        listener.tell(new JobEvent.Finished(5, 1.0, 1.0, "x"));
        stopped.get(10, TimeUnit.SECONDS);
        int atEnd = received.get();
        assertEquals(3, events.size(), events.toString());
        assertTrue(heardNs.get() > 0);
        assertEquals(atEnd, received.get(), "none sent after the job's end");
    }

    @Test
    void shouldStopWhenTheListenerStops() throws Exception {
        AtomicInteger received = new AtomicInteger();
        ActorRef<CoordinatorActor.Command> gateway = gateway(1, received, new JobEvent.Failed("refused", 0, 0));
        // the listener stops at the Failed it hears; the watch, not the next tick, stops the submitter
        CompletableFuture<Void> stopped = started(TroupeNode.submitter(new CoordinatorActor.SubmitJob(JOB, listener()),
            gateway, List.of(gateway), () -> false, Duration.ofMillis(200), Duration.ofSeconds(20), null));
        stopped.get(10, TimeUnit.SECONDS);
        assertEquals(2, received.get(), "one lost, the second answered with the job's end");
    }

    @Test
    void shouldGiveUpAtItsBoundWhenNothingAnswers() throws Exception {
        AtomicInteger received = new AtomicInteger();
        ActorRef<CoordinatorActor.Command> gateway = gateway(Integer.MAX_VALUE, received,
            new JobEvent.Accepted("0000002a", 1, false));
        CompletableFuture<Void> stopped = started(submitter(listener(), gateway, Duration.ofMillis(900)));
        stopped.get(10, TimeUnit.SECONDS);
        int sent = received.get();
        assertTrue(sent >= 3, "sent again while the bound lasted: " + sent);
        assertTrue(events.isEmpty(), events.toString());
    }
}
