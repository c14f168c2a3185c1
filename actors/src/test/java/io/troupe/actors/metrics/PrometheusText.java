package io.troupe.actors.metrics;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.regex.Pattern;

/**
 * A strict reader of the Prometheus text exposition format (version 0.0.4), for tests that scrape a real endpoint:
 * {@link #check} throws naming the line of the first violation, a reader's {@link #value} looks a series up.
 *
 * <p>What it holds the text to: every line ends with a newline; metric names match
 * {@code [a-zA-Z_:][a-zA-Z0-9_:]*}, label names {@code [a-zA-Z_][a-zA-Z0-9_]*} (not {@code __}-prefixed), once per
 * series; label values are quoted with only {@code \\}, {@code \"} and {@code \n} escaped; values are decimal
 * numbers, {@code NaN}, {@code +Inf} or {@code -Inf}; {@code # HELP} (escaping only {@code \\} and {@code \n}) and
 * {@code # TYPE} come at most once per family, before its samples, and a family's lines are contiguous; a typed
 * family holds only its own sample names; no series repeats; counters are not negative or NaN; a histogram's
 * buckets per label set have sorted, distinct {@code le}, cumulative counts, a {@code +Inf} bucket equal to
 * {@code _count}, and a {@code _sum}; a summary's {@code quantile} lies in [0, 1].
 */
public final class PrometheusText {
    private static final Pattern METRIC_NAME = Pattern.compile("[a-zA-Z_:][a-zA-Z0-9_:]*");
    private static final Pattern LABEL_NAME = Pattern.compile("[a-zA-Z_][a-zA-Z0-9_]*");
    private static final Pattern VALUE = Pattern.compile(
        "[+-]?(?:[0-9]+(?:\\.[0-9]*)?|\\.[0-9]+)(?:[eE][+-]?[0-9]+)?|NaN|[+-]Inf");
    private static final Pattern TIMESTAMP = Pattern.compile("-?[0-9]+");
    private static final Set<String> TYPES = Set.of("counter", "gauge", "histogram", "summary", "untyped");

    /** Series (name and labels as written, e.g. {@code a_total{reason="X"}}) to value, in order. */
    private final Map<String, Double> series = new LinkedHashMap<>();

    private PrometheusText() {
    }

    /**
     * Checks {@code text} strictly and reads its series.
     *
     * @throws AssertionError naming the line and the rule it breaks
     */
    public static PrometheusText check(String text) {
        PrometheusText p = new PrometheusText();
        p.read(text);
        return p;
    }

    /** The value of a series as written in the text (labels in the text's order), or fails naming it. */
    public double value(String seriesKey) {
        Double v = series.get(seriesKey);
        if (v == null) {
            throw new AssertionError("no series " + seriesKey + " in the scrape");
        }
        return v;
    }

    /** Whether the text holds the series. */
    public boolean has(String seriesKey) {
        return series.containsKey(seriesKey);
    }

    /** Every series and its value, in the text's order. */
    public Map<String, Double> series() {
        return series;
    }

    private record Sample(String name, Map<String, String> labels, double value) {
    }

    private void read(String text) {
        if (text.isEmpty()) {
            return;
        }
        if (!text.endsWith("\n")) {
            throw new AssertionError("the text does not end with a newline: ..."
                + text.substring(Math.max(0, text.length() - 80)));
        }
        Map<String, String> types = new HashMap<>();
        Set<String> helped = new HashSet<>();
        Set<String> closed = new HashSet<>();     // families whose lines ended (another family's came)
        Set<String> sampled = new HashSet<>();
        Set<String> seenSeries = new HashSet<>();
        Map<String, List<Sample>> byFamily = new LinkedHashMap<>();
        String current = null;
        String[] lines = text.split("\n", -1);
        for (int i = 0; i < lines.length - 1; i++) {
            String line = lines[i];
            String where = "line " + (i + 1) + " '" + line + "': ";
            if (line.isBlank()) {
                continue;
            }
            String family;
            if (line.startsWith("#")) {
                String[] t = line.split("[ \t]+", 4);
                if (t.length < 3 || !t[0].equals("#") || !(t[1].equals("HELP") || t[1].equals("TYPE"))) {
                    continue;                      // another comment
                }
                family = t[2];
                if (!METRIC_NAME.matcher(family).matches()) {
                    throw new AssertionError(where + "invalid metric name " + family);
                }
                if (sampled.contains(family)) {
                    throw new AssertionError(where + t[1] + " after the family's samples");
                }
                if (t[1].equals("HELP")) {
                    if (!helped.add(family)) {
                        throw new AssertionError(where + "a second HELP for " + family);
                    }
                    checkHelpEscapes(where, t.length > 3 ? t[3] : "");
                } else {
                    if (t.length != 4 || !TYPES.contains(t[3])) {
                        throw new AssertionError(where + "TYPE must name one of " + TYPES);
                    }
                    if (types.putIfAbsent(family, t[3]) != null) {
                        throw new AssertionError(where + "a second TYPE for " + family);
                    }
                }
            } else {
                Sample s = parseSample(where, line);
                family = familyOf(s.name(), types);
                String type = types.getOrDefault(family, "untyped");
                if (!family.equals(s.name()) || type.equals("histogram")) {
                    String suffix = s.name().substring(family.length());
                    boolean ok = type.equals("histogram") ? Set.of("_bucket", "_sum", "_count").contains(suffix)
                        : Set.of("_sum", "_count").contains(suffix);
                    if (!ok) {
                        throw new AssertionError(where + s.name() + " does not belong to the " + type + " " + family);
                    }
                }
                String key = seriesKey(s);
                if (!seenSeries.add(key)) {
                    throw new AssertionError(where + "the series " + key + " repeats");
                }
                if (type.equals("counter") && !(s.value() >= 0)) {
                    throw new AssertionError(where + "a counter's value must be a number >= 0");
                }
                sampled.add(family);
                byFamily.computeIfAbsent(family, f -> new ArrayList<>()).add(s);
                series.put(s.name() + labelText(line), s.value());
            }
            if (!family.equals(current)) {
                if (closed.contains(family)) {
                    throw new AssertionError(where + "the family " + family + " is split across the text");
                }
                if (current != null) {
                    closed.add(current);
                }
                current = family;
            }
        }
        for (Map.Entry<String, List<Sample>> f : byFamily.entrySet()) {
            String type = types.getOrDefault(f.getKey(), "untyped");
            if (type.equals("histogram")) {
                checkHistogram(f.getKey(), f.getValue());
            } else if (type.equals("summary")) {
                for (Sample s : f.getValue()) {
                    String q = s.labels().get("quantile");
                    if (q != null && !(parseValue(q) >= 0 && parseValue(q) <= 1)) {
                        throw new AssertionError(f.getKey() + ": quantile " + q + " outside [0, 1]");
                    }
                }
            }
        }
    }

    /** The family a sample name belongs to: a typed histogram or summary its suffix names, else the name. */
    private static String familyOf(String name, Map<String, String> types) {
        for (String suffix : new String[] {"_bucket", "_sum", "_count"}) {
            if (name.endsWith(suffix)) {
                String base = name.substring(0, name.length() - suffix.length());
                String t = types.get(base);
                if ("histogram".equals(t) || ("summary".equals(t) && !suffix.equals("_bucket"))) {
                    return base;
                }
            }
        }
        return name;
    }

    private static void checkHistogram(String family, List<Sample> samples) {
        // per label set without le: the buckets in the text's order, the count and the sum
        Map<String, List<double[]>> buckets = new LinkedHashMap<>();
        Map<String, Double> counts = new HashMap<>();
        Map<String, Double> sums = new HashMap<>();
        for (Sample s : samples) {
            Map<String, String> rest = new TreeMap<>(s.labels());
            String le = rest.remove("le");
            String key = rest.toString();
            if (s.name().endsWith("_bucket")) {
                if (le == null) {
                    throw new AssertionError(family + ": a bucket without le " + rest);
                }
                buckets.computeIfAbsent(key, k -> new ArrayList<>()).add(new double[] {parseValue(le), s.value()});
            } else if (le != null) {
                throw new AssertionError(family + ": le on " + s.name());
            } else if (s.name().endsWith("_count")) {
                counts.put(key, s.value());
            } else {
                sums.put(key, s.value());
            }
        }
        Set<String> keys = new HashSet<>(buckets.keySet());
        keys.addAll(counts.keySet());
        keys.addAll(sums.keySet());
        for (String key : keys) {
            List<double[]> b = buckets.get(key);
            String at = family + key + ": ";
            if (b == null || b.get(b.size() - 1)[0] != Double.POSITIVE_INFINITY) {
                throw new AssertionError(at + "no +Inf bucket last");
            }
            for (int i = 1; i < b.size(); i++) {
                if (!(b.get(i)[0] > b.get(i - 1)[0])) {
                    throw new AssertionError(at + "le not ascending: " + b.get(i - 1)[0] + " then " + b.get(i)[0]);
                }
                if (b.get(i)[1] < b.get(i - 1)[1]) {
                    throw new AssertionError(at + "buckets not cumulative at le=" + b.get(i)[0]);
                }
            }
            if (!counts.containsKey(key) || counts.get(key) != b.get(b.size() - 1)[1]) {
                throw new AssertionError(at + "_count " + counts.get(key) + " is not the +Inf bucket's "
                    + b.get(b.size() - 1)[1]);
            }
            if (!sums.containsKey(key)) {
                throw new AssertionError(at + "no _sum");
            }
        }
    }

    private static Sample parseSample(String where, String line) {
        int i = 0;
        while (i < line.length() && line.charAt(i) != '{' && line.charAt(i) != ' ' && line.charAt(i) != '\t') {
            i++;
        }
        String name = line.substring(0, i);
        if (!METRIC_NAME.matcher(name).matches()) {
            throw new AssertionError(where + "invalid metric name '" + name + "'");
        }
        Map<String, String> labels = new LinkedHashMap<>();
        if (i < line.length() && line.charAt(i) == '{') {
            i++;
            while (true) {
                if (i < line.length() && line.charAt(i) == '}') {
                    i++;
                    break;
                }
                int eq = line.indexOf('=', i);
                if (eq < 0) {
                    throw new AssertionError(where + "a label without '='");
                }
                String label = line.substring(i, eq);
                if (!LABEL_NAME.matcher(label).matches() || label.startsWith("__")) {
                    throw new AssertionError(where + "invalid label name '" + label + "'");
                }
                i = eq + 1;
                if (i >= line.length() || line.charAt(i) != '"') {
                    throw new AssertionError(where + "label " + label + "'s value is not quoted");
                }
                StringBuilder v = new StringBuilder();
                i++;
                while (true) {
                    if (i >= line.length()) {
                        throw new AssertionError(where + "label " + label + "'s value is not closed");
                    }
                    char c = line.charAt(i++);
                    if (c == '"') {
                        break;
                    }
                    if (c == '\\') {
                        char e = i < line.length() ? line.charAt(i++) : ' ';
                        if (e != '\\' && e != '"' && e != 'n') {
                            throw new AssertionError(where + "label " + label + " has an invalid escape \\" + e);
                        }
                        v.append(e == 'n' ? '\n' : e);
                    } else {
                        v.append(c);
                    }
                }
                if (labels.put(label, v.toString()) != null) {
                    throw new AssertionError(where + "label " + label + " twice");
                }
                if (i < line.length() && line.charAt(i) == ',') {
                    i++;
                } else if (i >= line.length() || line.charAt(i) != '}') {
                    throw new AssertionError(where + "expected ',' or '}' after label " + label);
                }
            }
        }
        String rest = line.substring(i);
        if (rest.isEmpty() || (rest.charAt(0) != ' ' && rest.charAt(0) != '\t')) {
            throw new AssertionError(where + "no space before the value");
        }
        String[] t = rest.strip().split("[ \t]+");
        if (t.length > 2 || !VALUE.matcher(t[0]).matches()) {
            throw new AssertionError(where + "invalid value '" + rest.strip() + "'");
        }
        if (t.length == 2 && !TIMESTAMP.matcher(t[1]).matches()) {
            throw new AssertionError(where + "invalid timestamp '" + t[1] + "'");
        }
        return new Sample(name, labels, parseValue(t[0]));
    }

    private static void checkHelpEscapes(String where, String help) {
        for (int i = 0; i < help.length(); i++) {
            if (help.charAt(i) == '\\') {
                char e = i + 1 < help.length() ? help.charAt(i + 1) : ' ';
                if (e != '\\' && e != 'n') {
                    throw new AssertionError(where + "HELP has an invalid escape \\" + e);
                }
                i++;
            }
        }
    }

    private static double parseValue(String v) {
        if (!VALUE.matcher(v).matches()) {
            throw new AssertionError("not a Prometheus value: '" + v + "'");
        }
        return switch (v) {
            case "+Inf" -> Double.POSITIVE_INFINITY;
            case "-Inf" -> Double.NEGATIVE_INFINITY;
            default -> Double.parseDouble(v);
        };
    }

    private static String seriesKey(Sample s) {
        return s.name() + new TreeMap<>(s.labels());
    }

    private static String labelText(String line) {
        int open = line.indexOf('{');
        int space = line.indexOf(' ');
        if (open < 0 || (space >= 0 && space < open)) {
            return "";
        }
        return line.substring(open, line.lastIndexOf('}') + 1);
    }
}
