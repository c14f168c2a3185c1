package io.troupe.actors.trace;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The steps a run traces ({@code --trace-steps A:B}): steps {@code A..B} inclusive, counted as the
 * progress lines count them (step {@code k} is the k-th update, 1-based). Their timelines are laid
 * end to end into one {@link Timeline}, with a {@code steps} track marking where each step begins.
 *
 * @param first first traced step (1-based)
 * @param last  last traced step, {@code >= first}
 */
public record TraceWindow(long first, long last) {
    public TraceWindow {
        if (first < 1 || last < first) {
            throw new IllegalArgumentException("trace window must have 1 <= first <= last: first=" + first + ", last="
                + last);
        }
    }

    /** The last step of a run of {@code steps} steps (the default). */
    public static TraceWindow lastOf(long steps) {
        return new TraceWindow(steps, steps);
    }

    /**
     * Parses {@code A:B} or {@code N} (= {@code N:N}) for a run of {@code steps} steps.
     *
     * @throws IllegalArgumentException naming the value when it is not of that form or not within [1, steps]
     */
    public static TraceWindow parse(String value, long steps) {
        String v = value.trim();
        int colon = v.indexOf(':');
        try {
            long a = Long.parseLong(colon < 0 ? v : v.substring(0, colon).trim());
            long b = colon < 0 ? a : Long.parseLong(v.substring(colon + 1).trim());
            if (a >= 1 && a <= b && b <= steps) {
                return new TraceWindow(a, b);
            }
        } catch (NumberFormatException e) {
            // refused below
        }
        throw new IllegalArgumentException("trace-steps must be A:B with 1 <= A <= B <= steps=" + steps
            + " (or one step N): trace-steps=" + value);
    }

    public boolean contains(long step) {
        return step >= first && step <= last;
    }

    public long steps() {
        return last - first + 1;
    }

    /**
     * Lays the timelines of consecutive traced steps end to end (each starting where the previous
     * one ended, plus {@code gapUs}); tracks with the same process and name become one.
     */
    public static Timeline sequence(String title, List<Long> stepNumbers, List<Timeline> steps, double gapUs) {
        if (stepNumbers.size() != steps.size()) {
            throw new IllegalArgumentException(stepNumbers.size() + " step numbers for " + steps.size() + " timelines");
        }
        Map<String, List<TimelineInterval>> byTrack = new LinkedHashMap<>();
        Map<String, String[]> names = new LinkedHashMap<>();
        List<TimelineInterval> marks = new ArrayList<>();
        double origin = 0;
        for (int i = 0; i < steps.size(); i++) {
            Timeline t = steps.get(i);
            double end = t.endUs();
            marks.add(new TimelineInterval("step " + stepNumbers.get(i), "step", origin, origin + end,
                String.valueOf(stepNumbers.get(i)), Map.of()));
            for (TimelineTrack tr : t.tracks()) {
                String key = tr.process() + "\u0000" + tr.name();
                names.putIfAbsent(key, new String[] {tr.process(), tr.name()});
                List<TimelineInterval> out = byTrack.computeIfAbsent(key, k -> new ArrayList<>());
                for (TimelineInterval iv : tr.intervals()) {
                    out.add(new TimelineInterval(iv.name(), iv.category(), origin + iv.startUs(), origin + iv.endUs(),
                        iv.label(), iv.args()));
                }
            }
            origin += end + gapUs;
        }
        List<TimelineTrack> tracks = new ArrayList<>();
        tracks.add(new TimelineTrack("steps", "steps", marks));
        for (Map.Entry<String, List<TimelineInterval>> e : byTrack.entrySet()) {
            String[] n = names.get(e.getKey());
            tracks.add(new TimelineTrack(n[0], n[1], e.getValue()));
        }
        return new Timeline(title, tracks);
    }
}
