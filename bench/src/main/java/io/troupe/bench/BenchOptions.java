package io.troupe.bench;

import io.troupe.actors.cli.Options;
import io.troupe.actors.cli.UsageException;
import java.util.Set;

/**
 * A benchmark's command line, parsed by the same parser as every {@code troupe} command: {@code --help}
 * prints the usage and exits 0; an unknown option, a missing value or a bad number prints one line
 * naming it and exits 2.
 */
public final class BenchOptions {
    private BenchOptions() {
    }

    /**
     * @param bench  the benchmark's name, as {@code scripts/bench} takes it
     * @param usage  its usage text
     * @param known  options that take a value
     * @param flags  options that take none
     */
    public static Options parse(String[] args, String bench, String usage, Set<String> known, Set<String> flags) {
        if (Options.wantsHelp(args)) {
            System.out.println(usage);
            System.exit(0);
        }
        // A bad value found later (getInt of a word) ends the run the same way, in one line.
        Thread.UncaughtExceptionHandler previous = Thread.getDefaultUncaughtExceptionHandler();
        Thread.setDefaultUncaughtExceptionHandler((thread, e) -> {
            if (e instanceof UsageException u) {
                exit(bench, usage, u);
            } else if (previous != null) {
                previous.uncaughtException(thread, e);
            } else {
                e.printStackTrace();
            }
        });
        try {
            return Options.parse(args, known, flags);
        } catch (UsageException e) {
            throw exit(bench, usage, e);
        }
    }

    /** Exits 2 after printing {@code e}'s message and the usage (a bad value found after parsing). */
    public static RuntimeException exit(String bench, String usage, UsageException e) {
        System.err.println("bench " + bench + ": " + e.getMessage());
        System.err.println(usage);
        System.exit(2);
        return e;
    }
}
