package io.troupe.actors.cli;

import com.typesafe.config.Config;
import io.troupe.actors.serve.StageHostServer;
import io.troupe.models.checkpoint.CheckpointException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Set;

/**
 * {@code troupe serve-stage --checkpoint DIR [--host H] [--port P] [--config FILE]}: a stage host, which
 * runs one later pipeline stage for a {@code troupe serve --layout 1xN --stage-hosts ...} server until
 * stopped.
 */
final class ServeStageCommand {
    private ServeStageCommand() {
    }

    static final String USAGE = """
        usage: troupe serve-stage --checkpoint DIR [--host 127.0.0.1] [--port 7355] [--config FILE]
        Holds one later pipeline stage of a model served by 'troupe serve --layout 1xN --stage-hosts
        HOST:PORT,...' (one stage host per stage 1..N-1, in order). The server tells it which blocks to hold;
        it reads them from its own copy of the checkpoint, which must be the server's (same model, step and
        shard files), and its stage's keys and values live here. Steps arrive over the data plane
        (troupe.transport: set udp-bind-host to an address the other hosts reach). Stops on SIGTERM/Ctrl-C
        (the stage it holds closed, exit code 0); one that ends by itself says so on stderr and exits 6.""";

    /** How long closing may take: the actor system, the stage it holds, the data plane, ms. */
    private static final long CLOSE_MS = 20_000;

    static int run(String[] args, PrintStream out, PrintStream err) {
        Options o = Options.parse(args, Set.of("checkpoint", "host", "port", "config"), Set.of());
        if (!o.has("checkpoint")) {
            throw new UsageException("serve-stage needs --checkpoint DIR");
        }
        Config cfg = NodeCommand.withConfigFile(o);
        String host = o.has("host") ? o.get("host") : "127.0.0.1";
        int port;
        try {
            port = o.has("port") ? Integer.parseInt(o.get("port").trim()) : 7355;
        } catch (NumberFormatException e) {
            throw new UsageException("--port must be an integer: --port=" + o.get("port"));
        }
        if (port < 0 || port > 65535) {
            throw new UsageException("--port must be in [0, 65535]: --port=" + port);
        }
        ServeCommand.requireListenable(host, port);
        StageHostServer server;
        try {
            Path checkpoint = CheckpointCommand.existingDirectory("--checkpoint", o.get("checkpoint"));
            server = StageHostServer.start(checkpoint, host, port, cfg);
        } catch (CheckpointException e) {
            err.println("troupe serve-stage: " + e.getMessage());
            return 4;
        }
        out.printf("troupe serve-stage: up at %s, serving stages of %s%n", server.hostPort(), server.checkpoint());
        out.flush();
        StopSignal stop = StopSignal.install("troupe-serve-stage", CLOSE_MS);
        boolean requested = true;
        try {
            requested = stop.awaitRequest(server.whenTerminated());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        server.close();
        if (!requested) {
            err.println("troupe serve-stage: the stage host ended by itself: its actor system terminated with no stop"
                + " asked for");
            err.flush();
            stop.stopped();
            return ServeCommand.ENDED;
        }
        out.println("troupe serve-stage: stopped");
        out.flush();
        stop.stopped();
        return 0;
    }
}
