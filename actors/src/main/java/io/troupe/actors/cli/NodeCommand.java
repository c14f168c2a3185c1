package io.troupe.actors.cli;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import io.troupe.actors.cluster.NodeSettings;
import io.troupe.actors.cluster.TroupeNode;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;

/**
 * {@code troupe node [--config FILE] [--role worker|coordinator[,..]] [--port P] [--seed HOST:PORT]...
 * [--workers N] [--threads N]}: runs one cluster node until it is stopped (SIGTERM / Ctrl-C leave
 * the cluster gracefully).
 */
final class NodeCommand {
    private NodeCommand() {
    }

    static final String USAGE = """
        usage: troupe node [--config FILE] [--role worker|coordinator[,...]] [--port P] [--seed HOST:PORT]...
                           [--workers N] [--threads N] [--hostname H] [--metrics-port P]
                           [--snapshots auto|on|off]
        Settings: troupe.cluster in cluster-config/reference.conf; flags override the file.
        --workers: at least 1 with the worker role (the default roles are worker,coordinator); a node that
        hosts no workers is --role coordinator.
        --snapshots: in-memory snapshots of every commit with a copy on another node (troupe.recovery.snapshots,
        default auto: on where every node's -XX:MaxDirectMemorySize holds its snapshot slots, else off for that
        epoch, saying why; on: such a job is refused); set it alike on every node that may host the coordinator.
        Metrics (Prometheus): http://HOSTNAME:9464/metrics (troupe.metrics; --metrics-port 0 picks a free port).""";

    static int run(String[] args, PrintStream out, PrintStream err) {
        Config cfg = load(args);
        NodeSettings s;
        try {
            s = NodeSettings.from(cfg);
        } catch (ConfigException | IllegalArgumentException e) {
            throw new UsageException(e.getMessage());
        }
        io.troupe.actors.metrics.MetricsSettings ms;
        try {
            ms = io.troupe.actors.metrics.MetricsSettings.from(cfg);
        } catch (IllegalArgumentException e) {
            throw new UsageException(e.getMessage());
        }
        TroupeNode node = TroupeNode.start(s, cfg, null);
        io.troupe.actors.metrics.NodeMetrics metrics = null;
        if (ms.enabled()) {
            try {
                metrics = io.troupe.actors.metrics.NodeMetrics.start(node, ms);
            } catch (IllegalStateException e) {
                if (!(e.getCause() instanceof java.net.BindException) || ms.port() == 0) {
                    node.close();
                    throw new UsageException(e.getMessage());
                }
                // Several nodes on one host: the first has the configured port, the others a free one.
                metrics = io.troupe.actors.metrics.NodeMetrics.start(node,
                    new io.troupe.actors.metrics.MetricsSettings(true, ms.hostname(), 0));
                err.printf("troupe node: metrics port %d is taken on %s; serving on a free port instead%n", ms.port(),
                    ms.hostname());
            }
        }
        io.troupe.actors.metrics.NodeMetrics served = metrics;
        out.printf("troupe node: up at %s, roles %s, %d worker(s) x %d thread(s); data plane %s%n", node.hostPort(),
            s.roles(), s.roles().contains("worker") ? s.workers() : 0, s.threadsPerWorker(),
            node.transport() == null ? "none (no workers)" : node.transport().aeronDir());
        if (served != null) {
            out.printf("troupe node: metrics at %s%n", served.url());
        }
        out.flush();
        printWhenJoined(node, out);
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            if (served != null) {
                served.close();
            }
            node.close();
            stopped.countDown();
        }, "troupe-node-shutdown"));
        node.system().getWhenTerminated().thenRun(stopped::countDown);
        try {
            stopped.await();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        return 0;
    }

    /**
     * Prints {@code troupe node: joined the cluster as ADDRESS} once this node is an Up member (the cluster's
     * leader has admitted it): from then on the coordinator may give its workers ranks. A node restarted on its
     * port (a rolling restart) is back in the cluster at this line, not at {@code up at}, which only says its actor
     * system listens.
     */
    static void printWhenJoined(TroupeNode node, PrintStream out) {
        var cluster = org.apache.pekko.cluster.Cluster.get(
            org.apache.pekko.actor.typed.javadsl.Adapter.toClassic(node.system()));
        cluster.registerOnMemberUp(() -> {
            out.printf("troupe node: joined the cluster as %s%n", cluster.selfAddress());
            out.flush();
        });
    }

    /** reference.conf (with system properties) under the file {@code --config} names, if any, resolved. */
    static Config withConfigFile(Options o) {
        Config cfg = ConfigFactory.load();
        if (o.has("config")) {
            cfg = ConfigFiles.parse(Path.of(o.get("config"))).withFallback(cfg).resolve();
        }
        return cfg;
    }

    /** reference.conf, then --config, then the flags, as one resolved config. */
    static Config load(String[] args) {
        Options o = Options.parse(args, java.util.Set.of("config", "role", "port", "seed", "workers",
            "threads", "hostname",
            "metrics-port", "snapshots"),
            java.util.Set.of());
        Config cfg = withConfigFile(o);
        List<String> overrides = new ArrayList<>();
        if (o.has("role")) {
            overrides.add("troupe.cluster.roles = [" + String.join(",", Arrays.stream(o.get("role").split(","))
                .map(r -> "\"" + r.trim() + "\"").toList()) + "]");
        }
        for (String[] kv : new String[][] {{"port", "cluster.port"}, {"workers", "cluster.workers"},
            {"threads", "cluster.threads-per-worker"}, {"metrics-port", "metrics.port"}}) {
            if (o.has(kv[0])) {
                try {
                    overrides.add("troupe." + kv[1] + " = " + Integer.parseInt(o.get(kv[0])));
                } catch (NumberFormatException e) {
                    throw new UsageException("--" + kv[0] + " must be an integer, got '" + o.get(kv[0]) + "'");
                }
            }
        }
        if (o.has("hostname")) {
            overrides.add("troupe.cluster.hostname = \"" + o.get("hostname") + "\"");
        }
        if (o.has("snapshots")) {
            String v = o.get("snapshots");
            if (!v.equals("auto") && !v.equals("on") && !v.equals("off")) {
                throw new UsageException("--snapshots must be auto, on or off, got '" + v + "'");
            }
            overrides.add("troupe.recovery.snapshots = " + v);
        }
        if (o.has("seed")) {
            overrides.add("troupe.cluster.seeds = [" + String.join(",", Arrays.stream(o.get("seed").split(","))
                .map(r -> "\"" + r.trim() + "\"").toList()) + "]");
        }
        if (overrides.isEmpty()) {
            return cfg;
        }
        return ConfigFactory.parseString(String.join("\n", overrides)).withFallback(cfg).resolve();
    }
}
