package io.troupe.actors.trace;

import java.io.IOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * Writes a {@link Timeline} as Chrome trace-event JSON, which Perfetto (ui.perfetto.dev) and
 * chrome://tracing load:
 *
 * <pre>
 * {"displayTimeUnit":"ms","traceEvents":[
 *   {"name":"process_name","ph":"M","pid":1,"tid":0,"args":{"name":"pipeline"}},
 *   {"name":"thread_name","ph":"M","pid":1,"tid":1,"args":{"name":"stage 0"}},
 *   {"name":"F(mb=0, v=0)","cat":"F","ph":"X","ts":0.000,"dur":1000.000,"pid":1,"tid":1,"args":{"mb":"0"}},
 *   ...]}
 * </pre>
 *
 * One pid per distinct {@link TimelineTrack#process()} (numbered from 1 in order of first
 * appearance), one tid per track within it (from 1, top to bottom, also its sort index). Every
 * interval becomes a complete ({@code "ph":"X"}) event; {@code ts} and {@code dur} are microseconds.
 * Intervals of {@link #COUNTER_CATEGORY} are samples and become counter ({@code "ph":"C"}) events,
 * e.g. {@code {"name":"activations dp0 pp0","ph":"C","ts":1000.000,"pid":1,"tid":1,"args":{"MiB":12.500}}}.
 * Stateless and thread-safe.
 */
public final class ChromeTraceWriter {
    private ChromeTraceWriter() {
    }

    /** Writes {@code timeline} to {@code file} (UTF-8), replacing it. */
    public static void write(Timeline timeline, Path file) throws IOException {
        try (Writer out = Files.newBufferedWriter(file, StandardCharsets.UTF_8)) {
            write(timeline, out);
        }
    }

    /** Writes {@code timeline} as one JSON object to {@code out}; does not close it. */
    public static void write(Timeline timeline, Writer out) throws IOException {
        Map<String, Integer> pids = new LinkedHashMap<>();
        Map<String, Integer> nextTid = new LinkedHashMap<>();
        out.write("{\"displayTimeUnit\":\"ms\",\"otherData\":{\"title\":");
        string(out, timeline.title());
        out.write("},\"traceEvents\":[\n");
        boolean first = true;
        for (TimelineTrack track : timeline.tracks()) {
            Integer pid = pids.get(track.process());
            if (pid == null) {
                pid = pids.size() + 1;
                pids.put(track.process(), pid);
                first = separator(out, first);
                out.write("{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":" + pid + ",\"tid\":0,\"args\":{\"name\":");
                string(out, track.process());
                out.write("}}");
            }
            int tid = nextTid.merge(track.process(), 1, Integer::sum);
            first = separator(out, first);
            out.write("{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":" + pid + ",\"tid\":" + tid
                + ",\"args\":{\"name\":");
            string(out, track.name());
            out.write("}},\n{\"name\":\"thread_sort_index\",\"ph\":\"M\",\"pid\":" + pid + ",\"tid\":" + tid
                    + ",\"args\":{\"sort_index\":" + tid + "}}");
            for (TimelineInterval interval : track.intervals()) {
                first = separator(out, first);
                if (interval.category().equals(COUNTER_CATEGORY)) {
                    counter(out, interval, track.name(), pid, tid);
                } else {
                    event(out, interval, pid, tid);
                }
            }
        }
        out.write("\n]}\n");
        out.flush();
    }

    /**
     * Intervals of this category are samples of a quantity over time (zero length; their args map
     * series names to decimal values): each becomes a counter ({@code "ph":"C"}) event named
     * {@code <interval name> <track name>}, so every track gets its own counter track.
     */
    public static final String COUNTER_CATEGORY = "counter";

    private static void counter(Writer out, TimelineInterval sample, String trackName, int pid, int tid)
        throws IOException {
        out.write("{\"name\":");
        string(out, sample.name() + " " + trackName);
        out.write(String.format(Locale.ROOT, ",\"ph\":\"C\",\"ts\":%.3f,\"pid\":%d,\"tid\":%d,\"args\":{",
            sample.startUs(), pid, tid));
        boolean firstArg = true;
        for (Map.Entry<String, String> e : new java.util.TreeMap<>(sample.args()).entrySet()) {
            if (!firstArg) {
                out.write(',');
            }
            firstArg = false;
            string(out, e.getKey());
            out.write(':');
            out.write(decimal(e.getValue()));
        }
        out.write("}}");
    }

    /** {@code value} when it is a plain decimal number (safe to write unquoted), else {@code 0}. */
    private static String decimal(String value) {
        return value.matches("-?[0-9]+(\\.[0-9]+)?") ? value : "0";
    }

    private static void event(Writer out, TimelineInterval interval, int pid, int tid) throws IOException {
        out.write("{\"name\":");
        string(out, interval.name());
        out.write(",\"cat\":");
        string(out, interval.category());
        out.write(String.format(Locale.ROOT, ",\"ph\":\"X\",\"ts\":%.3f,\"dur\":%.3f,\"pid\":%d,\"tid\":%d",
                interval.startUs(), interval.durationUs(), pid, tid));
        if (!interval.args().isEmpty()) {
            out.write(",\"args\":{");
            boolean firstArg = true;
            for (Map.Entry<String, String> e : new java.util.TreeMap<>(interval.args()).entrySet()) {
                if (!firstArg) {
                    out.write(',');
                }
                firstArg = false;
                string(out, e.getKey());
                out.write(':');
                string(out, e.getValue());
            }
            out.write('}');
        }
        out.write('}');
    }

    private static boolean separator(Writer out, boolean first) throws IOException {
        if (!first) {
            out.write(",\n");
        }
        return false;
    }

    /** Writes {@code s} as a JSON string literal. */
    static void string(Writer out, String s) throws IOException {
        out.write('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> out.write("\\\"");
                case '\\' -> out.write("\\\\");
                case '\n' -> out.write("\\n");
                case '\r' -> out.write("\\r");
                case '\t' -> out.write("\\t");
                default -> {
                    if (c < 0x20) {
                        out.write(String.format(Locale.ROOT, "\\u%04x", (int) c));
                    } else {
                        out.write(c);
                    }
                }
            }
        }
        out.write('"');
    }
}
