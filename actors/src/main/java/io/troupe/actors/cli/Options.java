package io.troupe.actors.cli;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/** {@code --name value} and {@code --name=value} options, checked against the names a command knows. */
final class Options {
    private final Map<String, String> values = new LinkedHashMap<>();

    private Options() {
    }

    static Options parse(String[] args, Set<String> known, Set<String> flags) {
        Options o = new Options();
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (!a.startsWith("--")) {
                throw new UsageException("unexpected argument '" + a + "'");
            }
            String name = a.substring(2);
            String value = null;
            int eq = name.indexOf('=');
            if (eq >= 0) {
                value = name.substring(eq + 1);
                name = name.substring(0, eq);
            }
            if (!known.contains(name) && !flags.contains(name)) {
                throw new UsageException("unknown option '--" + name + "'; known: --"
                    + String.join(", --", sorted(known, flags)));
            }
            if (flags.contains(name)) {
                o.values.put(name, value == null ? "true" : value);
                continue;
            }
            if (value == null) {
                if (i + 1 >= args.length) {
                    throw new UsageException("option '--" + name + "' needs a value");
                }
                value = args[++i];
            }
            o.values.merge(name, value, (first, more) -> first + "," + more);
        }
        return o;
    }

    private static List<String> sorted(Set<String> a, Set<String> b) {
        java.util.TreeSet<String> all = new java.util.TreeSet<>(a);
        all.addAll(b);
        return List.copyOf(all);
    }

    /** {@code value} of option {@code --name} as a whole number >= 1. */
    static long positiveLong(String name, String value) {
        long v;
        try {
            v = Long.parseLong(value.trim());
        } catch (NumberFormatException e) {
            throw new UsageException("--" + name + ": expected a whole number, got '" + value + "'");
        }
        if (v < 1) {
            throw new UsageException("--" + name + ": expected a whole number >= 1, got '" + value + "'");
        }
        return v;
    }

    String get(String name) {
        return values.get(name);
    }

    boolean has(String name) {
        return values.containsKey(name);
    }

    Map<String, String> all() {
        return values;
    }
}
