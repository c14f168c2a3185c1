package io.troupe.actors.cli;

import java.io.PrintStream;
import java.util.Arrays;

/** Entry point of {@code scripts/troupe}: dispatches to a sub-command. */
public final class TroupeCli {
    private TroupeCli() {
    }

    static final String USAGE = """
        usage: troupe <command> [options]
          train      train a GPT: dp x pp on an embedded cluster, or one device (see 'troupe train --help')
          simulate   simulate a pipeline schedule (see 'troupe simulate --help')
          node       run one cluster node (see 'troupe node --help')
          submit     submit a training job to a running cluster: --cluster HOST:PORT [train options]
          driver     run the host's shared Aeron media driver (see 'troupe driver --help')
          serve      serve a checkpoint over HTTP with continuous batching (see 'troupe serve --help')
          eval       exact validation loss of a checkpoint, fp32 or int8 (see 'troupe eval --help')
        """;

    public static void main(String[] args) {
        // Initialise logging on this thread before any other thread logs: otherwise SLF4J replays the
        // first calls and says so on stderr.
        org.slf4j.LoggerFactory.getILoggerFactory();
        int code = run(args, System.out, System.err);
        System.out.flush();
        System.exit(code);
    }

    /** Runs a command; returns the process exit code (0 ok, 2 usage or config error, 3 device, 4 checkpoint). */
    public static int run(String[] args, PrintStream out, PrintStream err) {
        if (args.length == 0 || args[0].equals("--help") || args[0].equals("-h")) {
            out.print(USAGE);
            return args.length == 0 ? 2 : 0;
        }
        String[] rest = Arrays.copyOfRange(args, 1, args.length);
        boolean help = rest.length > 0 && (rest[0].equals("--help") || rest[0].equals("-h"));
        try {
            switch (args[0]) {
                case "train":
                    if (help) {
                        out.println(TrainCommand.USAGE);
                        return 0;
                    }
                    return TrainCommand.run(rest, out, err);
                case "node":
                    if (help) {
                        out.println(NodeCommand.USAGE);
                        return 0;
                    }
                    return NodeCommand.run(rest, out, err);
                case "submit":
                    return SubmitCommand.run(rest, out, err);
                case "driver":
                    if (help) {
                        out.println(DriverCommand.USAGE);
                        return 0;
                    }
                    return DriverCommand.run(rest, out, err);
                case "serve":
                    return ServeCommand.run(rest, out, err);
                case "eval":
                    return EvalCommand.run(rest, out, err);
                case "simulate":
                    return io.troupe.actors.schedule.SimulateCommand.run(rest, out, err);
                default:
                    err.println("troupe: unknown command '" + args[0] + "'");
                    err.print(USAGE);
                    return 2;
            }
        } catch (UsageException e) {
            err.println("troupe " + args[0] + ": " + e.getMessage());
            return 2;
        }
    }
}
