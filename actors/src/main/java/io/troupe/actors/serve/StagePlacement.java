package io.troupe.actors.serve;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.atomic.AtomicReferenceArray;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Which of the stage hosts named holds each later stage of a served pipeline, from what the heartbeats and
 * the loads said of each host. Times are {@link System#nanoTime()} values passed in, so the policy is a pure
 * function of what was heard and when.
 *
 * <p>A stage stays where it is unless its host is unfit: it failed (silent for the loss timeout, or did not
 * answer a load) and has not answered a heartbeat since, it refused a load within the loss timeout, its
 * last heartbeat answer said it would refuse one (its checkpoint differs from the server's), or it is stuck:
 * its last answer said a stage thread of it has been inside one step for longer than the step timeout, or the
 * server found it stuck ({@link #stuck}) and no answer since says that step ended. Then
 * the stage moves to a spare (a host holding no stage) that is steady: it has answered every heartbeat for
 * at least the loss timeout, with no gap longer than half of it, and its last answer is no older than that
 * half. Steadiness is the damping: a host that flaps faster than the loss timeout (stopped and continued, a
 * network that comes and goes) is never given a stage, and a host that answers the heartbeats that queued
 * while it was stopped, and is stopped again, is not taken for alive. Among steady spares the one that failed
 * longest ago, or never, is taken. With none, the stage waits for its own host.
 */
final class StagePlacement {
    private static final Logger LOG = LoggerFactory.getLogger(StagePlacement.class);

    private final List<String> hosts;
    private final long lossNs;
    /** Per slot: the last heartbeat answer, when the current unbroken run of answers began, the last failure
     * and the last refusal (0: never). */
    private final AtomicLongArray heard;
    private final AtomicLongArray steadySince;
    private final AtomicLongArray failed;
    private final AtomicLongArray refused;
    private final AtomicReferenceArray<String> refusals;
    /** Per slot: how long a stage thread of the host was inside its step at its last answer (0: in none), and
     * when the server found it stuck (0: not stuck). */
    private final AtomicLongArray stepNs;
    private final AtomicLongArray stuckSince;
    private final long stepTimeoutNs;
    private final AtomicLong moves = new AtomicLong();

    StagePlacement(List<String> hosts, Duration lossTimeout, Duration stepTimeout) {
        if (lossTimeout.isNegative() || lossTimeout.isZero()) {
            throw new IllegalArgumentException("loss-timeout must be > 0: loss-timeout=" + lossTimeout);
        }
        if (stepTimeout.isNegative() || stepTimeout.isZero()) {
            throw new IllegalArgumentException("step-timeout must be > 0: step-timeout=" + stepTimeout);
        }
        this.hosts = List.copyOf(hosts);
        this.lossNs = lossTimeout.toNanos();
        this.stepTimeoutNs = stepTimeout.toNanos();
        this.stepNs = new AtomicLongArray(hosts.size());
        this.stuckSince = new AtomicLongArray(hosts.size());
        this.heard = new AtomicLongArray(hosts.size());
        this.steadySince = new AtomicLongArray(hosts.size());
        this.failed = new AtomicLongArray(hosts.size());
        this.refused = new AtomicLongArray(hosts.size());
        this.refusals = new AtomicReferenceArray<>(hosts.size());
    }

    /** The host named at {@code slot}. */
    String host(int slot) {
        return hosts.get(slot);
    }

    /**
     * The hosts named, as a JSON array of {@code {"host", "stage" (null: a spare), "answering", "refuses"}}, at
     * {@code now}, with stage g (of {@code stages}) on slot {@code assigned[g]} (see
     * {@link PipelineStepRunner#stageHostsJson}).
     */
    String json(int[] assigned, int stages, long now) {
        StringBuilder sb = new StringBuilder("[");
        for (int slot = 0; slot < hosts.size(); slot++) {
            int stage = -1;
            for (int g = 1; g < stages; g++) {
                stage = assigned[g] == slot ? g : stage;
            }
            String refusal = refusal(slot);
            sb.append(slot == 0 ? "" : ",").append("{\"host\":").append(Json.quote(hosts.get(slot)))
                .append(",\"stage\":").append(stage < 0 ? "null" : String.valueOf(stage)).append(",\"answering\":")
                .append(answering(slot, now)).append(",\"refuses\":")
                .append(refusal == null ? "null" : Json.quote(refusal)).append('}');
        }
        return sb.append(']').toString();
    }

    /** How long a stage may stay inside one step before its host counts as stuck. */
    long stepTimeoutNs() {
        return stepTimeoutNs;
    }

    /** How long a host may stay silent before it counts as lost. */
    long lossNs() {
        return lossNs;
    }

    /** The longest gap between heartbeat answers that still counts as one unbroken run. */
    private long gapNs() {
        return lossNs / 2;
    }

    /**
     * The host at {@code slot} answered a heartbeat at {@code now}, saying why it would refuse a load now
     * ({@code refusal}; null: it would not) and how long a stage thread of it has been inside its current step
     * ({@code inStepNs}; 0: none is in one); called from one thread (the link actor).
     */
    void answered(int slot, long now, String refusal, long inStepNs) {
        long stuck = stuckSince.get(slot);
        // a step it entered after it was found stuck, or none: the stuck one ended
        if (stuck != 0 && inStepNs < now - stuck) {
            stuckSince.set(slot, 0);
            LOG.info("stage host {} is out of the step it was stuck in; it may take a stage again", hosts.get(slot));
        }
        stepNs.set(slot, inStepNs);
        long last = heard.get(slot);
        if (last == 0 || now - last > gapNs()) {
            steadySince.set(slot, now);
        }
        heard.set(slot, now);
        String before = refusals.getAndSet(slot, refusal);
        if (refusal != null && !refusal.equals(before)) {
            LOG.warn("stage host {} takes no stage while it would refuse the load: {}", hosts.get(slot), refusal);
        } else if (refusal == null && before != null) {
            LOG.info("stage host {} would take a stage again", hosts.get(slot));
        }
    }

    /**
     * Why the host at {@code slot} takes no stage now: what it said, at its last answer, of why it would refuse a
     * load, or that it is stuck inside a step; null if neither.
     */
    String refusal(int slot) {
        String r = refusals.get(slot);
        if (r != null || !stuck(slot)) {
            return r;
        }
        return "it is stuck: a stage thread of it was inside one step for " + stepNs.get(slot) / 1_000_000
            + " ms at its last heartbeat (step timeout " + stepTimeoutNs / 1_000_000 + " ms)";
    }

    /** How long a stage thread of the host at {@code slot} was inside its current step at its last answer, ns. */
    long stepNs(int slot) {
        return stepNs.get(slot);
    }

    /**
     * Whether the host at {@code slot} said at its last answer that a stage thread of it has been inside one step
     * for longer than the step timeout.
     */
    boolean overStepTimeout(int slot) {
        return stepNs.get(slot) > stepTimeoutNs;
    }

    /**
     * The server found the host at {@code slot} stuck at {@code now} (its stage inside one step for the step
     * timeout): it takes no stage until an answer says that step ended.
     */
    void stuck(int slot, long now) {
        stuckSince.compareAndSet(slot, 0, now == 0 ? 1 : now);
    }

    /** Whether the host at {@code slot} is stuck: found so and not out of that step since, or it says so now. */
    boolean stuck(int slot) {
        return stuckSince.get(slot) != 0 || overStepTimeout(slot);
    }

    /** The host at {@code slot} failed at {@code now}: silent for the loss timeout, or it did not answer a load. */
    void failed(int slot, long now) {
        failed.set(slot, now);
    }

    /** The host at {@code slot} refused a load at {@code now} (another checkpoint, another server). */
    void refused(int slot, long now) {
        refused.set(slot, now);
    }

    /** When the host at {@code slot} last answered a heartbeat ({@code System.nanoTime()}); 0: never. */
    long lastAnswerNs(int slot) {
        return heard.get(slot);
    }

    /** Whether the host at {@code slot} answered a heartbeat within the loss timeout. */
    boolean answering(int slot, long now) {
        long h = heard.get(slot);
        return h != 0 && now - h <= lossNs;
    }

    /**
     * Whether the host at {@code slot} should not hold a stage now: it has not answered a heartbeat since it
     * failed, it refused a load within the loss timeout, its last answer said it would refuse one, or it is
     * {@link #stuck(int) stuck}.
     */
    boolean unfit(int slot, long now) {
        long f = failed.get(slot);
        long r = refused.get(slot);
        return f != 0 && heard.get(slot) - f <= 0 || r != 0 && now - r < lossNs || refusals.get(slot) != null
            || stuck(slot);
    }

    /** Whether the host at {@code slot} has answered without a break for at least the loss timeout, up to now. */
    boolean steady(int slot, long now) {
        long h = heard.get(slot);
        return h != 0 && now - h <= gapNs() && now - steadySince.get(slot) >= lossNs;
    }

    /**
     * Where each stage 1..N-1 runs in the next wiring, given where each ran ({@code assigned[g]}: a slot;
     * index 0 unused): where it ran unless its host is unfit and a steady spare is fit.
     */
    int[] place(int[] assigned, long now) {
        int[] a = assigned.clone();
        boolean[] used = new boolean[hosts.size()];
        for (int g = 1; g < a.length; g++) {
            used[a[g]] = true;
        }
        for (int g = 1; g < a.length; g++) {
            int s = a[g];
            if (!unfit(s, now)) {
                continue;
            }
            int best = -1;
            for (int t = 0; t < used.length; t++) {
                if (used[t] || !steady(t, now) || unfit(t, now)) {
                    continue;
                }
                if (best < 0 || failedEarlier(t, best)) {
                    best = t;
                }
            }
            if (best >= 0) {
                LOG.warn("stage {} moves from stage host {} (not answering, refusing, or stuck) to the spare {}", g,
                    hosts.get(s), hosts.get(best));
                a[g] = best;
                moves.incrementAndGet();
                used[s] = false;
                used[best] = true;
            }
        }
        return a;
    }

    /** Whether the host at {@code t} failed longer ago than the one at {@code u}; never failing is earliest. */
    private boolean failedEarlier(int t, int u) {
        long ft = failed.get(t);
        long fu = failed.get(u);
        return ft == 0 ? fu != 0 : fu != 0 && ft - fu < 0;
    }

    /** How many times a stage moved to a spare. */
    long moves() {
        return moves.get();
    }
}
