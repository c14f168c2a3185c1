package io.troupe.actors.schedule;

import java.util.ArrayList;
import java.util.List;

/**
 * A static schedule: for each rank the ordered list of actions it runs in one step. Plain data,
 * immutable; {@link ScheduleValidator} says whether it is dependency-correct and deadlock-free.
 *
 * @param name    e.g. {@code 1f1b}
 * @param shape   ranks, virtual stages, micro-batches
 * @param perRank {@code perRank.get(rank)} is that rank's actions in execution order
 */
public record Schedule(String name, PipelineShape shape, List<List<Action>> perRank) {
    public Schedule {
        if (perRank.size() != shape.stages()) {
            throw new IllegalArgumentException(
                    "schedule needs one action list per rank: lists=" + perRank.size() + ", stages=" + shape.stages());
        }
        List<List<Action>> copy = new ArrayList<>(perRank.size());
        for (List<Action> actions : perRank) {
            copy.add(List.copyOf(actions));
        }
        perRank = List.copyOf(copy);
    }

    public List<Action> actions(int rank) {
        return perRank.get(rank);
    }

    /** This schedule as a policy the executor or simulator can run. */
    public SchedulePolicy asPolicy() {
        return new StaticSchedulePolicy(this);
    }

    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder(name).append(' ').append(shape).append('\n');
        for (int r = 0; r < perRank.size(); r++) {
            sb.append("  rank ").append(r).append(':');
            for (Action a : perRank.get(r)) {
                sb.append(' ').append(a.label());
            }
            sb.append('\n');
        }
        return sb.toString();
    }
}
