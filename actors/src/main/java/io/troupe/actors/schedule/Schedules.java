package io.troupe.actors.schedule;

import java.util.ArrayList;
import java.util.List;

/**
 * Pure functions from a pipeline shape to a static {@link Schedule}. Ranks count from 0 (the first
 * stage); micro-batches from 0.
 */
public final class Schedules {
    private Schedules() {
    }

    /** GPipe: every forward, then every fused backward, each in micro-batch order. Peak activations m. */
    public static Schedule gpipe(int stages, int microbatches) {
        PipelineShape shape = PipelineShape.of(stages, microbatches);
        List<List<Action>> perRank = new ArrayList<>();
        for (int r = 0; r < stages; r++) {
            List<Action> actions = new ArrayList<>();
            for (int mb = 0; mb < microbatches; mb++) {
                actions.add(Action.f(mb));
            }
            for (int mb = 0; mb < microbatches; mb++) {
                actions.add(Action.bw(mb));
            }
            perRank.add(actions);
        }
        return new Schedule("gpipe", shape, perRank);
    }

    /**
     * 1F1B (PipeDream-Flush): rank r runs {@code min(p-1-r, m)} warm-up forwards, then alternates one
     * forward and one fused backward, then drains the backwards. Peak activations on rank r: p - r.
     */
    public static Schedule oneFOneB(int stages, int microbatches) {
        PipelineShape shape = PipelineShape.of(stages, microbatches);
        List<List<Action>> perRank = new ArrayList<>();
        for (int r = 0; r < stages; r++) {
            perRank.add(oneFOneBOrder(stages, r, microbatches, ActionType.BW));
        }
        return new Schedule("1f1b", shape, perRank);
    }

    /** Rank r's 1F1B order with backwards of type {@code backward} (BW fused, or B alone). */
    static List<Action> oneFOneBOrder(int stages, int rank, int microbatches, ActionType backward) {
        return warmupThenAlternate(stages - 1 - rank, microbatches, backward);
    }

    /** {@code warmup} forwards, then F and B alternating (each F before the B it pairs with), then the Bs. */
    static List<Action> warmupThenAlternate(int warmupForwards, int microbatches, ActionType backward) {
        int warmup = Math.min(warmupForwards, microbatches);
        List<Action> actions = new ArrayList<>();
        for (int mb = 0; mb < warmup; mb++) {
            actions.add(Action.f(mb));
        }
        for (int k = 0; k < microbatches - warmup; k++) {
            actions.add(Action.f(warmup + k));
            actions.add(new Action(backward, k, 0));
        }
        for (int mb = microbatches - warmup; mb < microbatches; mb++) {
            actions.add(new Action(backward, mb, 0));
        }
        return actions;
    }

    /**
     * Interleaved 1F1B (Megatron-LM): each rank holds v model chunks; model stage g = chunk * p + rank.
     * Forwards go in groups of p micro-batches per chunk, chunk 0 to v-1; backwards likewise from chunk
     * v-1 down. Rank r warms up with {@code 2(p-1-r) + (v-1)p} forwards (all of them when m = p).
     * With F = B the bubble is (p-1)/v of one micro-batch's time per rank.
     *
     * @throws IllegalArgumentException when v > 1 and m is not a multiple of p (Megatron's constraint)
     */
    public static Schedule interleaved(int stages, int virtualStages, int microbatches) {
        PipelineShape shape = new PipelineShape(stages, virtualStages, microbatches);
        if (virtualStages > 1 && microbatches % stages != 0) {
            throw new IllegalArgumentException("interleaved 1F1B needs micro-batches to be a multiple of stages: "
                    + "microbatches=" + microbatches + ", stages=" + stages);
        }
        if (virtualStages == 1) {
            return new Schedule("interleaved", shape, oneFOneB(stages, microbatches).perRank());
        }
        int total = microbatches * virtualStages;
        List<List<Action>> perRank = new ArrayList<>();
        for (int r = 0; r < stages; r++) {
            int warmup = microbatches == stages ? total
                    : Math.min(2 * (stages - 1 - r) + (virtualStages - 1) * stages, total);
            List<Action> actions = new ArrayList<>();
            for (int k = 0; k < warmup; k++) {
                actions.add(interleavedAction(ActionType.F, k, stages, virtualStages));
            }
            for (int k = 0; k < total - warmup; k++) {
                actions.add(interleavedAction(ActionType.F, warmup + k, stages, virtualStages));
                actions.add(interleavedAction(ActionType.BW, k, stages, virtualStages));
            }
            for (int k = total - warmup; k < total; k++) {
                actions.add(interleavedAction(ActionType.BW, k, stages, virtualStages));
            }
            perRank.add(actions);
        }
        return new Schedule("interleaved", shape, perRank);
    }

    private static Action interleavedAction(ActionType type, int k, int stages, int virtualStages) {
        int group = stages * virtualStages;
        int chunk = (k % group) / stages;
        if (type != ActionType.F) {
            chunk = virtualStages - 1 - chunk;
        }
        int mb = (k / group) * stages + k % stages;
        return new Action(type, mb, chunk);
    }

    /**
     * ZB-H1 (Zero Bubble, Qi et al. 2023): 1F1B's order of forwards and input-gradient backwards, with
     * the weight gradients split off and delayed into the bubbles. Rank r may hold at most r delayed W
     * before it starts a forward, so live activations stay at most p, 1F1B's peak. The W placement
     * is derived by running that rule on unit costs (F = B = W), where every stage idles (p-1)F: a
     * third of 1F1B's (p-1)(F+B+W).
     */
    public static Schedule zbH1(int stages, int microbatches) {
        PipelineShape shape = PipelineShape.of(stages, microbatches);
        SchedulePolicy builder = new ZeroBubblePolicy("zb-h1", shape, 1);
        SimulationResult unit = new PipelineSimulator(CostModel.uniform(stages, 1.0, 1.0, 1.0), false).run(builder);
        return unit.asSchedule("zb-h1");
    }

    /**
     * ZB-H2 (Zero Bubble, Qi et al. 2023): twice ZB-H1's memory for (almost) no bubble. Rank r warms up
     * with {@code 2(p-1-r)} extra forwards, enough to keep it busy until its first gradient comes back,
     * then runs ZB-H1's rule with at most 2r delayed W before a forward: live activations stay at
     * most 2p. The W placement is derived on unit costs, as for ZB-H1.
     */
    public static Schedule zbH2(int stages, int microbatches) {
        PipelineShape shape = PipelineShape.of(stages, microbatches);
        SchedulePolicy builder = new ZeroBubblePolicy("zb-h2", shape, 2);
        SimulationResult unit = new PipelineSimulator(CostModel.uniform(stages, 1.0, 1.0, 1.0), false).run(builder);
        return unit.asSchedule("zb-h2");
    }

    /** The schedule named {@code gpipe}, {@code 1f1b}, {@code interleaved}, {@code zb-h1} or {@code zb-h2}. */
    public static Schedule byName(String name, int stages, int virtualStages, int microbatches) {
        return switch (name) {
            case "gpipe" -> gpipe(stages, microbatches);
            case "1f1b" -> oneFOneB(stages, microbatches);
            case "interleaved" -> interleaved(stages, virtualStages, microbatches);
            case "zb-h1" -> zbH1(stages, microbatches);
            case "zb-h2" -> zbH2(stages, microbatches);
            default -> throw new IllegalArgumentException(
                    "unknown schedule: schedule=" + name + " (known: gpipe, 1f1b, interleaved, zb-h1, zb-h2)");
        };
    }
}
