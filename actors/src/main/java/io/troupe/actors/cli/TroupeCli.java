package io.troupe.actors.cli;

import com.typesafe.config.ConfigException;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.NoSuchFileException;
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
          submit     submit a training job to a running cluster (see 'troupe submit --help')
          driver     run the host's shared Aeron media driver (see 'troupe driver --help')
          checkpoint ls (list) or diff (compare) checkpoints (see 'troupe checkpoint --help')
          serve      serve a checkpoint over HTTP with continuous batching (see 'troupe serve --help')
          serve-stage hold a later pipeline stage for 'troupe serve --stage-hosts' (see 'troupe serve-stage --help')
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

    /**
     * Runs a command; returns the process exit code (0 ok, 2 usage or config error, 3 device, 4
     * checkpoint, 5 a cluster job failed or a server's stop cut requests, 6 a server ended with no stop asked
     * for, 130 or 143 a {@code troupe train} stopped by Ctrl-C or SIGTERM, on every engine). A bad option,
     * value or file is one line on {@code err} naming it and what was expected, exit code 2, no stack
     * trace; so is a system property under a section of reference.conf ({@code -Dtroupe.transport.udp-prot=...})
     * that reference.conf does not list. {@code --help} (or {@code -h}) anywhere after a command
     * prints that command's usage.
     */
    public static int run(String[] args, PrintStream out, PrintStream err) {
        if (args.length == 0 || args[0].equals("--help") || args[0].equals("-h")) {
            out.print(USAGE);
            return args.length == 0 ? 2 : 0;
        }
        String command = args[0];
        String[] rest = Arrays.copyOfRange(args, 1, args.length);
        boolean help = Arrays.stream(rest).anyMatch(a -> a.equals("--help") || a.equals("-h"));
        String usage = switch (command) {
            case "train" -> TrainCommand.USAGE;
            case "node" -> NodeCommand.USAGE;
            case "submit" -> SubmitCommand.USAGE;
            case "driver" -> DriverCommand.USAGE;
            case "checkpoint" -> CheckpointCommand.USAGE;
            case "serve" -> ServeCommand.USAGE;
            case "serve-stage" -> ServeStageCommand.USAGE;
            case "eval" -> EvalCommand.USAGE;
            default -> null;
        };
        if (help && usage != null) {
            out.println(usage);
            return 0;
        }
        try {
            if (usage != null || command.equals("simulate")) {
                // a -Dtroupe.<section>.<key> that reference.conf does not list is a typo, not a setting to ignore
                ConfigFiles.requireKnownProperties(System.getProperties(), ConfigFiles.reference());
            }
            switch (command) {
                case "train":
                    return TrainCommand.run(rest, out, err);
                case "node":
                    return NodeCommand.run(rest, out, err);
                case "submit":
                    return SubmitCommand.run(rest, out, err);
                case "driver":
                    return DriverCommand.run(rest, out, err);
                case "checkpoint":
                    return CheckpointCommand.run(rest, out, err);
                case "serve":
                    return ServeCommand.run(rest, out, err);
                case "serve-stage":
                    return ServeStageCommand.run(rest, out, err);
                case "eval":
                    return EvalCommand.run(rest, out, err);
                case "simulate":
                    return SimulateCommand.run(rest, out, err);
                default:
                    err.println("troupe: unknown command '" + command
                        + "': expected train, simulate, node, submit, driver, checkpoint,"
                        + " serve, serve-stage or eval (troupe --help)");
                    return 2;
            }
        } catch (UsageException | IllegalArgumentException | ConfigException e) {
            err.println("troupe " + command + ": " + oneLine(e.getMessage()));
            return 2;
        } catch (UncheckedIOException e) {
            err.println("troupe " + command + ": " + oneLine(describe(e)));
            return 2;
        }
    }

    /** What went wrong with a file, naming it. */
    private static String describe(UncheckedIOException e) {
        IOException cause = e.getCause();
        if (cause instanceof NoSuchFileException n) {
            return "no such file '" + n.getFile() + "'";
        }
        if (cause instanceof AccessDeniedException a) {
            return "cannot read '" + a.getFile() + "': permission denied";
        }
        return e.getMessage();
    }

    private static String oneLine(String message) {
        return message == null ? "bad input" : message.strip().replaceAll("\\s*\\R\\s*", "; ");
    }
}
