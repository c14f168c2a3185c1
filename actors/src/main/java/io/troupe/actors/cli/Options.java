package io.troupe.actors.cli;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import picocli.CommandLine;
import picocli.CommandLine.MissingParameterException;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.ParseResult;
import picocli.CommandLine.UnmatchedArgumentException;

/**
 * {@code --name value} and {@code --name=value} options, checked against the names a command knows:
 * the one command-line parser (picocli underneath) of every {@code troupe} command and benchmark.
 */
public final class Options {
    private final Map<String, String> values = new LinkedHashMap<>();

    private Options() {
    }

    /**
     * Parses {@code args} with picocli against the option names a command knows: every name in
     * {@code known} takes one value ({@code --name value} or {@code --name=value}; once: a repeated option
     * is refused, a list is one comma-separated value), every name in {@code flags} takes none ({@code --name}, or
     * {@code --name=value}).
     *
     * @throws UsageException naming the unknown option, the option without its value, the repeated option, or
     *         the stray argument
     */
    public static Options parse(String[] args, Set<String> known, Set<String> flags) {
        CommandSpec spec = CommandSpec.create();
        for (String name : sorted(known, flags)) {
            OptionSpec.Builder b = OptionSpec.builder("--" + name).paramLabel(name.toUpperCase(Locale.ROOT));
            if (flags.contains(name)) {
                b.arity("0..1").type(String.class).fallbackValue("true");
            } else {
                b.arity("1").type(List.class).auxiliaryTypes(String.class);
            }
            spec.addOption(b.build());
        }
        CommandLine cl = new CommandLine(spec);
        cl.setExpandAtFiles(false);
        ParseResult parsed;
        try {
            parsed = cl.parseArgs(args);
        } catch (UnmatchedArgumentException e) {
            String first = e.getUnmatched().isEmpty() ? "?" : e.getUnmatched().get(0);
            if (first.startsWith("--")) {
                String name = first.substring(2);
                int eq = name.indexOf('=');
                throw new UsageException("unknown option '--" + (eq >= 0 ? name.substring(0, eq) : name)
                    + "'; known: --" + String.join(", --", sorted(known, flags)));
            }
            throw new UsageException("unexpected argument '" + first + "'");
        } catch (MissingParameterException e) {
            String option = e.getMissing().isEmpty() ? "?" : ((OptionSpec) e.getMissing().get(0)).longestName();
            throw new UsageException("option '" + option + "' needs a value");
        } catch (ParameterException e) {
            throw new UsageException(e.getMessage());
        }
        Options o = new Options();
        for (OptionSpec matched : parsed.matchedOptions()) {
            String name = matched.longestName().substring(2);
            Object v = matched.getValue();
            if (v instanceof List<?> list && list.size() > 1) {
                // one value wins silently, or two are joined into a value nobody typed ('a,b' as a path)
                throw new UsageException("option '--" + name + "' given " + list.size() + " times ('"
                    + String.join("', '", list.stream().map(String::valueOf).toList())
                    + "'); give it once (a list is one comma-separated value)");
            }
            o.values.put(name, v instanceof List<?> list ? String.valueOf(list.get(0)) : String.valueOf(v));
        }
        return o;
    }

    private static List<String> sorted(Set<String> a, Set<String> b) {
        java.util.TreeSet<String> all = new java.util.TreeSet<>(a);
        all.addAll(b);
        return List.copyOf(all);
    }

    /** {@code n} and the noun for it: {@code 1 argument}, {@code 2 arguments}. */
    static String count(long n, String singular, String plural) {
        return n + " " + (n == 1 ? singular : plural);
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

    /** True when {@code args} ask for help ({@code --help} or {@code -h} anywhere). */
    public static boolean wantsHelp(String[] args) {
        for (String a : args) {
            if (a.equals("--help") || a.equals("-h")) {
                return true;
            }
        }
        return false;
    }

    /** The value of {@code --name}, or null when it was not given. */
    public String get(String name) {
        return values.get(name);
    }

    /** The value of {@code --name}, or {@code otherwise} when it was not given. */
    public String get(String name, String otherwise) {
        return values.getOrDefault(name, otherwise);
    }

    /**
     * The value of {@code --name} as an int, or {@code otherwise} when it was not given.
     *
     * @throws UsageException naming the option and the value when it is not a whole number
     */
    public int getInt(String name, int otherwise) {
        String v = values.get(name);
        if (v == null) {
            return otherwise;
        }
        try {
            return Integer.parseInt(v.trim());
        } catch (NumberFormatException e) {
            throw new UsageException("--" + name + ": expected a whole number, got '" + v + "'");
        }
    }

    /**
     * The value of {@code --name} as comma-separated ints ({@code --sizes 1,4,16}), or {@code otherwise}
     * when it was not given.
     *
     * @throws UsageException naming the option and the value when a part is not a whole number
     */
    public int[] getInts(String name, int[] otherwise) {
        String v = values.get(name);
        if (v == null) {
            return otherwise;
        }
        String[] parts = v.split(",");
        int[] out = new int[parts.length];
        for (int i = 0; i < parts.length; i++) {
            try {
                out[i] = Integer.parseInt(parts[i].trim());
            } catch (NumberFormatException e) {
                throw new UsageException("--" + name + ": expected comma-separated whole numbers, got '" + v + "'");
            }
        }
        return out;
    }

    /**
     * The value of {@code --name} as a double, or {@code otherwise} when it was not given.
     *
     * @throws UsageException naming the option and the value when it is not a number
     */
    public double getDouble(String name, double otherwise) {
        String v = values.get(name);
        if (v == null) {
            return otherwise;
        }
        try {
            return Double.parseDouble(v.trim());
        } catch (NumberFormatException e) {
            throw new UsageException("--" + name + ": expected a number, got '" + v + "'");
        }
    }

    public boolean has(String name) {
        return values.containsKey(name);
    }

    /** Every option given, by name, in the order given. */
    public Map<String, String> all() {
        return values;
    }
}
