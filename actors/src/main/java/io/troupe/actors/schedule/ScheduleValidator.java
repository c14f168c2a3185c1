package io.troupe.actors.schedule;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Checks a static {@link Schedule} before anyone runs it.
 *
 * <ol>
 *   <li>Completeness: on every rank each (micro-batch, virtual stage) has exactly one F, and either
 *       one B and one W or one BW; nothing out of range.</li>
 *   <li>Local order: B/BW after its F, W after its B.</li>
 *   <li>Deadlock: the message flow is played out with every rank running its list in order and each
 *       action as soon as its input has been produced; if ranks get stuck, the wait-for cycle is
 *       reported, each rank with the action it waits at and the action it waits for.</li>
 *   <li>Peak live activations per rank, in list order (independent of timing).</li>
 * </ol>
 * Stateless and thread-safe.
 */
public final class ScheduleValidator {
    private ScheduleValidator() {
    }

    /** Validates with 1 MiB of activations per micro-batch for the byte peaks. */
    public static ValidationReport validate(Schedule schedule) {
        return validate(schedule, CostModel.uniform(schedule.shape().stages(), 1.0, 1.0, 1.0));
    }

    /** Validates; the cost model gives the activation sizes for the byte peaks. */
    public static ValidationReport validate(Schedule schedule, CostModel cost) {
        PipelineShape shape = schedule.shape();
        List<String> problems = new ArrayList<>();
        for (int r = 0; r < shape.stages(); r++) {
            checkRank(shape, r, schedule.actions(r), problems);
        }
        if (problems.isEmpty()) {
            checkDeadlock(schedule, problems);
        }
        int p = shape.stages();
        int[] peakLive = new int[p];
        long[] peakBytes = new long[p];
        for (int r = 0; r < p; r++) {
            int live = 0;
            long bytes = 0;
            for (Action a : schedule.actions(r)) {
                long size = cost.activationBytes(a.microbatch(), shape.virtualStages());
                if (a.type() == ActionType.F) {
                    live++;
                    bytes += size;
                    peakLive[r] = Math.max(peakLive[r], live);
                    peakBytes[r] = Math.max(peakBytes[r], bytes);
                } else if (a.type().freesActivations()) {
                    live--;
                    bytes -= size;
                }
            }
        }
        return new ValidationReport(schedule.name(), problems, peakLive, peakBytes);
    }

    private static void checkRank(PipelineShape shape, int rank, List<Action> actions, List<String> problems) {
        Map<Action, Integer> position = new HashMap<>();
        for (int i = 0; i < actions.size(); i++) {
            Action a = actions.get(i);
            if (a.microbatch() >= shape.microbatches() || a.virtualStage() >= shape.virtualStages()) {
                problems.add("rank " + rank + " position " + i + ": " + a + " is out of range for " + shape);
                continue;
            }
            Integer earlier = position.putIfAbsent(a, i);
            if (earlier != null) {
                problems.add("rank " + rank + ": " + a + " appears twice, at positions " + earlier + " and " + i);
            }
        }
        for (int c = 0; c < shape.virtualStages(); c++) {
            for (int mb = 0; mb < shape.microbatches(); mb++) {
                checkMicrobatch(rank, new Action(ActionType.F, mb, c), position, problems);
            }
        }
    }

    private static void checkMicrobatch(int rank, Action f, Map<Action, Integer> position, List<String> problems) {
        Integer fAt = position.get(f);
        Integer bAt = position.get(f.withType(ActionType.B));
        Integer wAt = position.get(f.withType(ActionType.W));
        Integer bwAt = position.get(f.withType(ActionType.BW));
        String where = "rank " + rank + ": ";
        if (fAt == null) {
            problems.add(where + "missing " + f);
        }
        if (bAt == null && bwAt == null) {
            problems.add(where + "missing " + f.withType(ActionType.B) + " or " + f.withType(ActionType.BW));
        }
        if (bAt != null && bwAt != null) {
            problems.add(where + "has both " + f.withType(ActionType.B) + " and " + f.withType(ActionType.BW));
        }
        if (bAt != null && wAt == null) {
            problems.add(where + "missing " + f.withType(ActionType.W) + " after its B at position " + bAt);
        }
        if (wAt != null && bAt == null) {
            problems.add(where + f.withType(ActionType.W) + " at position " + wAt + " has no B");
        }
        Integer backAt = bAt != null ? bAt : bwAt;
        if (fAt != null && backAt != null && backAt < fAt) {
            Action back = f.withType(bAt != null ? ActionType.B : ActionType.BW);
            problems.add(where + back + " at position " + backAt + " runs before its " + f + " at position " + fAt);
        }
        if (bAt != null && wAt != null && wAt < bAt) {
            problems.add(where + f.withType(ActionType.W) + " at position " + wAt + " runs before its "
                    + f.withType(ActionType.B) + " at position " + bAt);
        }
    }

    /** Plays the message flow out in logical time; reports the wait-for cycle if ranks get stuck. */
    private static void checkDeadlock(Schedule schedule, List<String> problems) {
        PipelineShape shape = schedule.shape();
        int p = shape.stages();
        int[] next = new int[p];
        boolean[][] forwardDone = new boolean[shape.modelStages()][shape.microbatches()];
        boolean[][] backwardDone = new boolean[shape.modelStages()][shape.microbatches()];
        boolean progress = true;
        while (progress) {
            progress = false;
            for (int r = 0; r < p; r++) {
                List<Action> actions = schedule.actions(r);
                while (next[r] < actions.size()) {
                    Action a = actions.get(next[r]);
                    Dependency dep = dependencyOf(shape, r, a);
                    if (dep != null && !(dep.action.type() == ActionType.F
                            ? forwardDone[dep.modelStage][dep.action.microbatch()]
                            : backwardDone[dep.modelStage][dep.action.microbatch()])) {
                        break;
                    }
                    int g = shape.modelStage(r, a.virtualStage());
                    if (a.type() == ActionType.F) {
                        forwardDone[g][a.microbatch()] = true;
                    } else if (a.type().isBackward()) {
                        backwardDone[g][a.microbatch()] = true;
                    }
                    next[r]++;
                    progress = true;
                }
            }
        }
        int stuck = -1;
        for (int r = 0; r < p && stuck < 0; r++) {
            if (next[r] < schedule.actions(r).size()) {
                stuck = r;
            }
        }
        if (stuck >= 0) {
            problems.add(describeCycle(schedule, next, stuck));
        }
    }

    private static String describeCycle(Schedule schedule, int[] next, int start) {
        PipelineShape shape = schedule.shape();
        int[] seenAt = new int[shape.stages()];
        java.util.Arrays.fill(seenAt, -1);
        List<String> steps = new ArrayList<>();
        List<Integer> ranks = new ArrayList<>();
        int r = start;
        while (seenAt[r] < 0) {
            seenAt[r] = steps.size();
            Action at = schedule.actions(r).get(next[r]);
            Dependency dep = dependencyOf(shape, r, at);
            int waitsOn = shape.rankOf(dep.modelStage);
            steps.add("rank " + r + " waits at " + at + " for " + dep.producedAs(shape)
                    + " of rank " + waitsOn + " (model stage " + dep.modelStage + ")");
            ranks.add(r);
            r = waitsOn;
        }
        List<String> cycle = steps.subList(seenAt[r], steps.size());
        StringBuilder path = new StringBuilder();
        for (int i = seenAt[r]; i < ranks.size(); i++) {
            path.append("rank ").append(ranks.get(i)).append(" -> ");
        }
        path.append("rank ").append(r);
        return "deadlock (" + path + "): " + String.join("; ", cycle);
    }

    /** What {@code a} on {@code rank} needs from another model stage, or null when only local inputs. */
    private static Dependency dependencyOf(PipelineShape shape, int rank, Action a) {
        int g = shape.modelStage(rank, a.virtualStage());
        return switch (a.type()) {
            case F -> g == 0 ? null : new Dependency(g - 1, Action.f(a.microbatch()));
            case B, BW -> g == shape.modelStages() - 1 ? null : new Dependency(g + 1, Action.b(a.microbatch()));
            case W -> null;
        };
    }

    /**
     * Output of {@code action} (type F or "a backward") on model stage {@code modelStage}.
     */
    private record Dependency(int modelStage, Action action) {
        String producedAs(PipelineShape shape) {
            Action onStage = new Action(action.type(), action.microbatch(), shape.virtualStageOf(modelStage));
            return action.type() == ActionType.F ? onStage.toString() : onStage + " (or BW)";
        }
    }
}
