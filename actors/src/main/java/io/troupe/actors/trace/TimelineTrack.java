package io.troupe.actors.trace;

import java.util.List;

/**
 * One row of a timeline: the intervals of one device or one activity, in start order.
 *
 * @param process   the group the track belongs to (a worker, a node, "pipeline"); one Chrome pid each
 * @param name      the row's name, e.g. {@code stage 3} or {@code send}; one Chrome tid each
 * @param intervals the intervals, ordered by start
 */
public record TimelineTrack(String process, String name, List<TimelineInterval> intervals) {
    public TimelineTrack {
        intervals = List.copyOf(intervals);
    }
}
