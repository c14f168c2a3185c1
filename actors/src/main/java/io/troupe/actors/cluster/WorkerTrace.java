package io.troupe.actors.cluster;

import io.troupe.actors.trace.TimelineInterval;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One worker's intervals of one step in a flat form that crosses nodes (parallel arrays of plain
 * values; args as {@code k=v} joined by {@code ;}). Times are microseconds since the worker began
 * the step. {@link #EMPTY} when the step was not traced.
 */
public record WorkerTrace(String[] names, String[] categories, double[] startUs, double[] endUs, String[] labels,
                          String[] args) implements CrossNodeMessage {
    public static final WorkerTrace EMPTY = new WorkerTrace(new String[0], new String[0], new double[0], new double[0],
        new String[0], new String[0]);

    public WorkerTrace {
        int n = names.length;
        if (categories.length != n || startUs.length != n || endUs.length != n || labels.length != n
            || args.length != n) {
            throw new IllegalArgumentException("trace arrays differ in length: names=" + n + ", categories="
                + categories.length + ", startUs=" + startUs.length + ", endUs=" + endUs.length + ", labels="
                + labels.length + ", args=" + args.length);
        }
    }

    public static WorkerTrace of(List<TimelineInterval> intervals) {
        int n = intervals.size();
        WorkerTrace t = new WorkerTrace(new String[n], new String[n], new double[n], new double[n], new String[n],
            new String[n]);
        for (int i = 0; i < n; i++) {
            TimelineInterval iv = intervals.get(i);
            t.names[i] = iv.name();
            t.categories[i] = iv.category();
            t.startUs[i] = iv.startUs();
            t.endUs[i] = iv.endUs();
            t.labels[i] = iv.label();
            StringBuilder sb = new StringBuilder();
            iv.args().entrySet().stream().sorted(Map.Entry.comparingByKey())
                .forEach(e -> sb.append(sb.length() == 0 ? "" : ";").append(e.getKey()).append('=')
                    .append(e.getValue()));
            t.args[i] = sb.toString();
        }
        return t;
    }

    public List<TimelineInterval> intervals() {
        List<TimelineInterval> out = new ArrayList<>(names.length);
        for (int i = 0; i < names.length; i++) {
            Map<String, String> a = new LinkedHashMap<>();
            if (!args[i].isEmpty()) {
                for (String kv : args[i].split(";")) {
                    int eq = kv.indexOf('=');
                    a.put(kv.substring(0, eq), kv.substring(eq + 1));
                }
            }
            out.add(new TimelineInterval(names[i], categories[i], startUs[i], endUs[i], labels[i], a));
        }
        return out;
    }

    public boolean isEmpty() {
        return names.length == 0;
    }
}
