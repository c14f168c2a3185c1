package io.troupe.actors.serve;

import io.troupe.runtime.transport.FrameKind;
import io.troupe.runtime.transport.ReceiveSlot;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The steps a {@link PipelineStepRunner} has in flight down its pipeline, by step id: each is completed with the
 * logits the last stage sends back ({@link #complete}), or failed with the failure a stage passed on, when it cannot
 * be sent, when the pipeline is lost or the server closes ({@link #failAll}), or when the answer of a step sent
 * after it arrives first ({@link #failOvertaken}). It also finds the oldest step sent and unanswered, for the
 * stuck-stage backstop ({@link #overdue}).
 */
final class PipelineSteps {
    // the runner's log: these are its steps
    private static final Logger LOG = LoggerFactory.getLogger(PipelineStepRunner.class);

    /** A step in flight, completed with its logits; {@link #sentNs} once stage 0 hands it to stage 1. */
    static final class InFlightStep extends CompletableFuture<float[]> {
        static final long NOT_SENT = Long.MIN_VALUE;
        volatile long sentNs = NOT_SENT;
    }

    private final ConcurrentHashMap<Long, InFlightStep> pending = new ConcurrentHashMap<>();

    /** Step {@code id}, in flight from now. */
    InFlightStep open(long id) {
        InFlightStep result = new InFlightStep();
        pending.put(id, result);
        return result;
    }

    /** Fails step {@code id} with {@code e}, if it is still in flight. */
    void fail(long id, Throwable e) {
        CompletableFuture<float[]> f = pending.remove(id);
        if (f != null) {
            f.completeExceptionally(e);
        }
    }

    /** Fails every step in flight with {@code e}. */
    void failAll(Throwable e) {
        for (Long id : List.copyOf(pending.keySet())) {
            fail(id, e);
        }
    }

    /**
     * The last stage's answer to the step of {@code slot}: its logits, or the failure a stage passed on
     * ({@link FrameKind#CONTROL}); on the receiver's thread, which releases the slot here.
     */
    void complete(ReceiveSlot slot) {
        try {
            InFlightStep f = pending.remove(slot.step());
            if (f == null) {
                return;
            }
            failOvertaken(slot.step());
            int bytes = (int) slot.lengthBytes();
            if (slot.kind() == FrameKind.CONTROL) {
                byte[] why = new byte[bytes];
                slot.buffer().getBytes(0, why);
                f.completeExceptionally(new IllegalStateException("pipeline step " + slot.step() + " failed at "
                    + new String(why, StandardCharsets.UTF_8)));
                return;
            }
            float[] logits = new float[bytes / 4];
            for (int i = 0; i < logits.length; i++) {
                logits[i] = slot.buffer().getFloat(4 * i);
            }
            f.complete(logits);
        } finally {
            slot.release();
        }
    }

    /**
     * Fails every step sent before {@code answered} that is still unanswered, before {@code answered} completes
     * (so the scheduler hears of them first): every stage takes and sends its frames in order, so their answers
     * went missing (a stage's thread died inside one) and would otherwise leave their logits to be taken for
     * another step's. On the receiver's thread; it looks through the pending steps only when some are left.
     */
    private void failOvertaken(long answered) {
        if (pending.isEmpty()) {
            return;
        }
        for (Long id : pending.keySet()) {
            if (id < answered) {
                LOG.warn("pipeline step {} is unanswered while step {}, sent after it, was answered: it failed", id,
                    answered);
                fail(id, new IllegalStateException("pipeline step " + id + " is unanswered while step " + answered
                    + ", sent after it, was answered (every stage answers in order): its answer went missing"));
            }
        }
    }

    /**
     * The backstop, at {@code now}: why the oldest step of {@code epoch} sent down the pipeline and unanswered for
     * the step timeout and a loss timeout more marks it down ({@link StuckStages#overdue}), or null (none is);
     * {@code place[g]} is the slot of stage g's host.
     */
    String overdue(StuckStages stuckStages, int[] place, long epoch, long now) {
        long oldest = -1;
        long sentNs = 0;
        for (Map.Entry<Long, InFlightStep> e : pending.entrySet()) {
            long t = e.getValue().sentNs;
            if (t != InFlightStep.NOT_SENT && (oldest < 0 || t - sentNs < 0)) {
                oldest = e.getKey();
                sentNs = t;
            }
        }
        return oldest >= 0 ? stuckStages.overdue(oldest, sentNs, place, epoch, now) : null;
    }
}
