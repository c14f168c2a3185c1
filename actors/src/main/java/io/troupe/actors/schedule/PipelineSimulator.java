package io.troupe.actors.schedule;

import io.troupe.actors.trace.Timeline;
import io.troupe.actors.trace.TimelineInterval;
import io.troupe.actors.trace.TimelineTrack;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.PriorityQueue;

/**
 * A discrete-event simulation of one pipeline step: it runs the same {@link StagePolicy} objects the
 * stage executor runs, with action times and message transit times from a {@link CostModel}.
 *
 * <p>Each rank has one in-order device. Events at the same instant are all delivered before any idle
 * rank is asked for its next action (ranks asked in order), so results are deterministic. Messages
 * leave when the producing action ends: F sends the activation to the next model stage, B/BW the
 * gradient to the previous one.
 *
 * <p>Threading: an instance is stateless between runs and may be shared; one run is single-threaded.
 */
public final class PipelineSimulator {
    private static final int FINISH = 0;
    private static final int INPUT = 1;
    private static final int GRAD = 2;

    private final CostModel cost;
    private final boolean recordTimeline;

    /** A simulator that records the timeline. */
    public PipelineSimulator(CostModel cost) {
        this(cost, true);
    }

    /** @param recordTimeline false to skip building the timeline (saves memory at large p, m) */
    public PipelineSimulator(CostModel cost, boolean recordTimeline) {
        this.cost = cost;
        this.recordTimeline = recordTimeline;
    }

    /**
     * Simulates one step of {@code policy}.
     *
     * @throws IllegalArgumentException when the cost model has another number of stages
     * @throws IllegalStateException when the policy deadlocks; the message names every stuck rank
     *                               and the action it waits for
     */
    public SimulationResult run(SchedulePolicy policy) {
        PipelineShape shape = policy.shape();
        if (cost.stages() != shape.stages()) {
            throw new IllegalArgumentException(
                    "cost model stages differ from the pipeline's: costStages=" + cost.stages()
                            + ", stages=" + shape.stages());
        }
        return new Run(policy, shape).execute();
    }

    private record Event(double timeUs, long seq, int kind, int rank, Action action) {
    }

    /** The mutable state of one simulation. */
    private final class Run {
        private final SchedulePolicy policy;
        private final PipelineShape shape;
        private final int p;
        private final int v;
        private final StagePolicy[] stages;
        private final PriorityQueue<Event> queue = new PriorityQueue<>((a, b) -> a.timeUs != b.timeUs
                ? Double.compare(a.timeUs, b.timeUs) : Long.compare(a.seq, b.seq));
        private long seq;
        private final boolean[] busy;
        private final double[] busySinceUs;
        private final double[] idleSinceUs;
        private final IdleCause[] idleCause;
        private final double[] busyUs;
        private final double[][] idleUs;
        private final long[] liveBytes;
        private final long[] peakBytes;
        private final int[] liveCount;
        private final int[] peakCount;
        private final int[] inFlightTo;
        private final boolean[][][] inputInFlight;
        private final boolean[][][] gradInFlight;
        private final List<List<Action>> executed = new ArrayList<>();
        private final List<List<TimelineInterval>> rows = new ArrayList<>();
        private final List<List<TimelineInterval>> sendRows = new ArrayList<>();
        private boolean anySendCost;

        Run(SchedulePolicy policy, PipelineShape shape) {
            this.policy = policy;
            this.shape = shape;
            this.p = shape.stages();
            this.v = shape.virtualStages();
            int m = shape.microbatches();
            stages = new StagePolicy[p];
            busy = new boolean[p];
            busySinceUs = new double[p];
            idleSinceUs = new double[p];
            idleCause = new IdleCause[p];
            busyUs = new double[p];
            idleUs = new double[p][IdleCause.values().length];
            liveBytes = new long[p];
            peakBytes = new long[p];
            liveCount = new int[p];
            peakCount = new int[p];
            inFlightTo = new int[p];
            inputInFlight = new boolean[p][v][m];
            gradInFlight = new boolean[p][v][m];
            for (int r = 0; r < p; r++) {
                stages[r] = policy.newStage(r);
                idleSinceUs[r] = Double.NaN;
                executed.add(new ArrayList<>());
                rows.add(new ArrayList<>());
                sendRows.add(new ArrayList<>());
            }
        }

        SimulationResult execute() {
            double nowUs = 0.0;
            boolean[] dirty = new boolean[p];
            java.util.Arrays.fill(dirty, true);
            while (true) {
                for (int r = 0; r < p; r++) {
                    if (dirty[r]) {
                        dirty[r] = false;
                        if (!busy[r]) {
                            Action a = stages[r].next(nowUs);
                            if (a != null) {
                                start(r, a, nowUs);
                            } else {
                                markIdle(r, nowUs);
                            }
                        }
                    }
                }
                if (queue.isEmpty()) {
                    break;
                }
                nowUs = queue.peek().timeUs;
                while (!queue.isEmpty() && queue.peek().timeUs <= nowUs) {
                    Event e = queue.poll();
                    handle(e, nowUs, dirty);
                }
            }
            double stepUs = nowUs;
            requireAllDone();
            for (int r = 0; r < p; r++) {
                closeIdle(r, stepUs);
            }
            List<List<Action>> order = new ArrayList<>();
            for (List<Action> list : executed) {
                order.add(List.copyOf(list));
            }
            return new SimulationResult(policy.name(), shape, stepUs, busyUs, idleUs, peakBytes, peakCount, order,
                    recordTimeline ? timeline() : new Timeline(policy.name(), List.of()));
        }

        private void handle(Event e, double nowUs, boolean[] dirty) {
            int r = e.rank;
            Action a = e.action;
            switch (e.kind) {
                case FINISH -> finish(r, a, nowUs, dirty);
                case INPUT -> {
                    inputInFlight[r][a.virtualStage()][a.microbatch()] = false;
                    inFlightTo[r]--;
                    stages[r].onInputArrived(a.microbatch(), a.virtualStage());
                }
                case GRAD -> {
                    gradInFlight[r][a.virtualStage()][a.microbatch()] = false;
                    inFlightTo[r]--;
                    stages[r].onGradArrived(a.microbatch(), a.virtualStage());
                }
                default -> throw new IllegalStateException("unknown event kind: kind=" + e.kind);
            }
            dirty[r] = true;
        }

        private void start(int r, Action a, double nowUs) {
            closeIdle(r, nowUs);
            busy[r] = true;
            busySinceUs[r] = nowUs;
            if (a.type() == ActionType.F) {
                liveBytes[r] += cost.activationBytes(a.microbatch(), v);
                peakBytes[r] = Math.max(peakBytes[r], liveBytes[r]);
                liveCount[r]++;
                peakCount[r] = Math.max(peakCount[r], liveCount[r]);
            }
            queue.add(new Event(nowUs + cost.durationUs(r, a, v), seq++, FINISH, r, a));
        }

        private void finish(int r, Action a, double nowUs, boolean[] dirty) {
            busy[r] = false;
            busyUs[r] += nowUs - busySinceUs[r];
            executed.get(r).add(a);
            if (recordTimeline) {
                rows.get(r).add(new TimelineInterval(a.toString(), a.type().name(), busySinceUs[r], nowUs,
                        Integer.toString(a.microbatch()),
                        Map.of("mb", Integer.toString(a.microbatch()), "v", Integer.toString(a.virtualStage()))));
            }
            if (a.type().freesActivations()) {
                liveBytes[r] -= cost.activationBytes(a.microbatch(), v);
                liveCount[r]--;
            }
            stages[r].onActionFinished(a);
            int g = shape.modelStage(r, a.virtualStage());
            if (a.type() == ActionType.F && g < shape.modelStages() - 1) {
                send(r, g + 1, INPUT, a, nowUs, dirty);
            } else if (a.type().isBackward() && g > 0) {
                send(r, g - 1, GRAD, a, nowUs, dirty);
            }
        }

        private void send(int from, int toModelStage, int kind, Action a, double nowUs, boolean[] dirty) {
            int to = shape.rankOf(toModelStage);
            int toV = shape.virtualStageOf(toModelStage);
            long bytes = cost.activationBytes(a.microbatch(), v);
            double transitUs = cost.messageUs(from, to, bytes);
            Action key = new Action(a.type(), a.microbatch(), toV);
            if (kind == INPUT) {
                inputInFlight[to][toV][a.microbatch()] = true;
            } else {
                gradInFlight[to][toV][a.microbatch()] = true;
            }
            inFlightTo[to]++;
            dirty[to] = true;
            queue.add(new Event(nowUs + transitUs, seq++, kind, to, key));
            if (recordTimeline && transitUs > 0.0) {
                anySendCost = true;
                String what = kind == INPUT ? "activation" : "gradient";
                sendRows.get(from).add(new TimelineInterval("send " + what + " mb=" + a.microbatch() + " to rank " + to,
                        "send", nowUs, nowUs + transitUs, Integer.toString(a.microbatch()),
                        Map.of("bytes", Long.toString(bytes), "to", Integer.toString(to))));
            }
        }

        private void markIdle(int r, double nowUs) {
            IdleCause cause = causeOf(r);
            if (Double.isNaN(idleSinceUs[r])) {
                idleSinceUs[r] = nowUs;
                idleCause[r] = cause;
            } else if (cause != idleCause[r]) {
                closeIdle(r, nowUs);
                idleSinceUs[r] = nowUs;
                idleCause[r] = cause;
            }
        }

        private void closeIdle(int r, double nowUs) {
            if (Double.isNaN(idleSinceUs[r])) {
                return;
            }
            double start = idleSinceUs[r];
            idleSinceUs[r] = Double.NaN;
            if (nowUs > start) {
                idleUs[r][idleCause[r].ordinal()] += nowUs - start;
                if (recordTimeline) {
                    String cause = idleCause[r].label();
                    rows.get(r).add(new TimelineInterval("idle (" + cause + ")", "idle", start, nowUs, "",
                            Map.of("cause", cause)));
                }
            }
        }

        private IdleCause causeOf(int r) {
            StagePolicy s = stages[r];
            if (s.isDone()) {
                return IdleCause.DRAINED;
            }
            if (s.blockedByMemory()) {
                return IdleCause.MEMORY_CAP;
            }
            Action awaited = s.awaited();
            if (awaited == null) {
                return inFlightTo[r] > 0 ? IdleCause.COMMUNICATION : IdleCause.INPUT;
            }
            int mb = awaited.microbatch();
            int cv = awaited.virtualStage();
            if (mb >= shape.microbatches() || cv >= v) {
                return IdleCause.INPUT;
            }
            boolean inFlight = switch (awaited.type()) {
                case F -> inputInFlight[r][cv][mb];
                case B, BW -> gradInFlight[r][cv][mb];
                case W -> false;
            };
            return inFlight ? IdleCause.COMMUNICATION : IdleCause.INPUT;
        }

        private void requireAllDone() {
            StringBuilder stuck = new StringBuilder();
            for (int r = 0; r < p; r++) {
                if (!stages[r].isDone()) {
                    stuck.append(stuck.length() == 0 ? "" : "; ").append("rank ").append(r).append(" waits at ")
                            .append(stages[r].awaited() == null ? "(any input)" : stages[r].awaited().toString());
                }
            }
            if (stuck.length() > 0) {
                throw new IllegalStateException("deadlock in " + policy.name() + " " + shape + ": " + stuck);
            }
        }

        private Timeline timeline() {
            List<TimelineTrack> tracks = new ArrayList<>();
            for (int r = 0; r < p; r++) {
                List<TimelineInterval> row = rows.get(r);
                row.sort((a, b) -> Double.compare(a.startUs(), b.startUs()));
                tracks.add(new TimelineTrack("pipeline", "stage " + r, row));
            }
            if (anySendCost) {
                for (int r = 0; r < p; r++) {
                    tracks.add(new TimelineTrack("links", "stage " + r + " send", sendRows.get(r)));
                }
            }
            return new Timeline(policy.name() + " " + shape, tracks);
        }
    }
}
