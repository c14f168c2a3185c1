package io.troupe.actors.trace;

import java.util.List;

/**
 * Tracks of intervals over one time range, the common input of {@link ChromeTraceWriter} and
 * {@link TimelineSvg}.
 *
 * @param title  a one-line caption, e.g. {@code 1f1b p=4 m=8 bubble=0.2727}
 * @param tracks the rows, top to bottom
 */
public record Timeline(String title, List<TimelineTrack> tracks) {
    public Timeline {
        tracks = List.copyOf(tracks);
    }

    /** The same tracks holding only the intervals whose category {@code keep} accepts. */
    public Timeline only(java.util.function.Predicate<String> keep) {
        List<TimelineTrack> out = new java.util.ArrayList<>();
        for (TimelineTrack t : tracks) {
            out.add(new TimelineTrack(t.process(), t.name(),
                t.intervals().stream().filter(i -> keep.test(i.category())).toList()));
        }
        return new Timeline(title, out);
    }

    /** The latest interval end over all tracks, 0 when empty. */
    public double endUs() {
        double end = 0.0;
        for (TimelineTrack t : tracks) {
            for (TimelineInterval i : t.intervals()) {
                end = Math.max(end, i.endUs());
            }
        }
        return end;
    }
}
