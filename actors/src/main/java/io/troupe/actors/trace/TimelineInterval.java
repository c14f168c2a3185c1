package io.troupe.actors.trace;

import java.util.Map;

/**
 * One interval on a track.
 *
 * @param name     what ran, e.g. {@code F(mb=3, v=0)} or {@code idle}
 * @param category kind used for colour and filtering: {@code F}, {@code B}, {@code W}, {@code BW},
 *                 {@code idle}, {@code send}, {@code recv}, {@code allreduce}, ...
 * @param startUs  start in microseconds since the timeline's origin
 * @param endUs    end in microseconds, {@code >= startUs}
 * @param label    short text drawn inside the box (e.g. the micro-batch number), may be empty
 * @param args     extra key/value pairs shown by trace viewers
 */
public record TimelineInterval(String name, String category, double startUs, double endUs, String label,
                               Map<String, String> args) {
    public TimelineInterval {
        if (!(endUs >= startUs)) {
            throw new IllegalArgumentException(
                    "interval must not end before it starts: name=" + name + ", startUs=" + startUs + ", endUs="
                        + endUs);
        }
        args = Map.copyOf(args);
        label = label == null ? "" : label;
    }

    public double durationUs() {
        return endUs - startUs;
    }
}
