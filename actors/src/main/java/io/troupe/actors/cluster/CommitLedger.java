package io.troupe.actors.cluster;

import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;

/**
 * Commit accounting of one epoch: a step is committed when every rank has reported it. Ranks run a
 * window of steps free, so a rank's report of a later step may overtake another rank's report of
 * the current one; those wait here and count once their step is current. Plain class, one thread
 * (the coordinator's).
 */
public final class CommitLedger {
    private final int ranks;
    private final BitSet answered = new BitSet();
    private final List<CoordinatorActor.StepDone> early = new ArrayList<>();
    private long next;
    private double lossSum;
    private int lossCount;
    private double busyMs;
    private double idleMs;
    private double allReduceMs;
    private long memBytes;
    private long gradBytesSent;
    private double gradNorm;
    private float lr;
    private WorkerTrace[] traces;
    private boolean traced;

    /** A step every rank reported: its mean loss and the ranks' summed timings. */
    public record Committed(long step, double loss, double gradNorm, float lr, double busyMs, double idleMs,
                            double allReduceMs, WorkerTrace[] traces, long memBytes, long gradBytesSent) {
        /** Idle / (busy + idle) over the ranks. */
        public double bubble() {
            return busyMs + idleMs > 0 ? idleMs / (busyMs + idleMs) : 0;
        }
    }

    /** @param firstStep the first step to commit (the step after the restored commit) */
    public CommitLedger(int ranks, long firstStep) {
        if (ranks < 1) {
            throw new IllegalArgumentException("a ledger needs ranks >= 1: ranks=" + ranks);
        }
        this.ranks = ranks;
        this.next = firstStep;
        reset(false);
    }

    /** The step the ledger waits for; every earlier one is committed. */
    public long nextStep() {
        return next;
    }

    /** Keep the intervals of the current step's reports (the traced step). */
    public void traceCurrent() {
        reset(true);
    }

    /** Ranks that have not reported the current step. */
    public List<Integer> missing() {
        List<Integer> out = new ArrayList<>();
        for (int r = 0; r < ranks; r++) {
            if (!answered.get(r)) {
                out.add(r);
            }
        }
        return out;
    }

    /**
     * Counts a report. Reports of committed steps and repeats are ignored; later steps wait.
     *
     * @return the committed step when this report completed it, else null; after a commit, call
     *         {@link #drainEarly()} to count reports that overtook it
     * @throws IllegalArgumentException for a rank outside the epoch's world
     */
    public Committed offer(CoordinatorActor.StepDone m) {
        if (m.rank() < 0 || m.rank() >= ranks) {
            throw new IllegalArgumentException("report from a rank outside the world: rank=" + m.rank() + ", ranks="
                + ranks);
        }
        if (m.step() < next) {
            return null;
        }
        if (m.step() > next) {
            early.add(m);
            return null;
        }
        if (answered.get(m.rank())) {
            return null;
        }
        answered.set(m.rank());
        lossSum += m.lossSum();
        lossCount += m.lossCount();
        busyMs += m.busyMs();
        idleMs += m.idleMs();
        allReduceMs = Math.max(allReduceMs, m.allReduceMs());
        memBytes = Math.max(memBytes, m.memBytes());
        gradBytesSent = Math.max(gradBytesSent, m.gradBytesSent());
        gradNorm = m.gradNorm();
        lr = m.lr();
        if (traced) {
            traces[m.rank()] = m.trace();
        }
        if (answered.cardinality() < ranks) {
            return null;
        }
        WorkerTrace[] t = traced ? traces.clone() : new WorkerTrace[0];
        for (int r = 0; r < t.length; r++) {
            if (t[r] == null) {
                t[r] = WorkerTrace.EMPTY;
            }
        }
        Committed c = new Committed(next, lossSum / Math.max(1, lossCount), gradNorm, lr, busyMs, idleMs, allReduceMs,
            t, memBytes, gradBytesSent);
        next++;
        reset(false);
        return c;
    }

    /** Counts the waiting reports of the (new) current step; returns the commit they complete, or null. */
    public Committed drainEarly() {
        List<CoordinatorActor.StepDone> waiting = new ArrayList<>(early);
        early.clear();
        Committed done = null;
        for (CoordinatorActor.StepDone d : waiting) {
            Committed c = offer(d);
            if (c != null) {
                done = c;
                // reports of the step after stay waiting for the next drain
                for (CoordinatorActor.StepDone rest : waiting.subList(waiting.indexOf(d) + 1, waiting.size())) {
                    if (rest.step() >= next) {
                        early.add(rest);
                    }
                }
                break;
            }
        }
        return done;
    }

    private void reset(boolean trace) {
        answered.clear();
        lossSum = 0;
        lossCount = 0;
        busyMs = 0;
        idleMs = 0;
        allReduceMs = 0;
        memBytes = 0;
        gradBytesSent = 0;
        traced = trace;
        traces = new WorkerTrace[trace ? ranks : 0];
    }
}
