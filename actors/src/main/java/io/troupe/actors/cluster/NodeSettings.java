package io.troupe.actors.cluster;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigValueFactory;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * A node's control-plane settings ({@code troupe.cluster} in reference.conf), validated once. The
 * one place that turns them into Pekko's settings: cluster provider, Artery on the given host and
 * port, seed nodes, roles, Split Brain Resolver (keep-majority), failure detector, and the Kryo
 * serializer bound to {@link CrossNodeMessage} with Java serialization off; a join check that
 * refuses nodes of another protocol version ({@link ProtocolVersionCheck}), and Artery over TLS
 * when {@code troupe.cluster.tls.enabled} ({@link ClusterSecurity}).
 */
public record NodeSettings(String systemName, String hostname, int port, List<String> seeds, List<String> roles,
                           int workers, int threadsPerWorker, Duration acceptableHeartbeatPause,
                           double failureDetectorThreshold, Duration sbrStableAfter) {

    public NodeSettings {
        if (port < 0 || port > 65535) {
            throw new IllegalArgumentException("troupe.cluster.port must be in 0..65535: port=" + port);
        }
        if (workers < 0) {
            throw new IllegalArgumentException("troupe.cluster.workers must be >= 0: workers=" + workers);
        }
        if (workers == 0 && roles.contains("worker")) {
            throw new IllegalArgumentException("troupe.cluster.workers (--workers) must be >= 1 on a node with the"
                + " worker role (a node without workers is --role coordinator): workers=0, roles=" + roles);
        }
        for (String s : seeds) {
            int colon = s.lastIndexOf(':');
            if (colon <= 0 || colon == s.length() - 1) {
                throw new IllegalArgumentException("troupe.cluster.seeds entries must be host:port, got '" + s + "'");
            }
            Integer.parseInt(s.substring(colon + 1));
        }
        for (String r : roles) {
            if (!r.equals("worker") && !r.equals("coordinator")) {
                throw new IllegalArgumentException("unknown role '" + r + "': expected worker or coordinator");
            }
        }
        seeds = List.copyOf(seeds);
        roles = List.copyOf(roles);
    }

    /** {@code troupe.cluster.singleton-removal-margin} where a config has none. */
    static final Duration DEFAULT_SINGLETON_REMOVAL_MARGIN = Duration.ofMillis(500);
    /** {@code troupe.cluster.leader-actions-interval} where a config has none. */
    static final Duration DEFAULT_LEADER_ACTIONS_INTERVAL = Duration.ofMillis(250);
    /** {@code troupe.cluster.unreachable-check-interval} where a config has none. */
    static final Duration DEFAULT_UNREACHABLE_CHECK_INTERVAL = Duration.ofMillis(250);
    /** {@code troupe.cluster.gossip-interval} where a config has none. */
    static final Duration DEFAULT_GOSSIP_INTERVAL = Duration.ofMillis(250);
    /** {@code troupe.cluster.heartbeat-interval} where a config has none. */
    static final Duration DEFAULT_HEARTBEAT_INTERVAL = Duration.ofMillis(500);

    /** A duration key of {@code base} in milliseconds, {@code fallback} when absent; must be positive. */
    private static long durationMs(Config base, String key, Duration fallback) {
        long ms = base.hasPath(key) ? base.getDuration(key).toMillis() : fallback.toMillis();
        if (ms <= 0) {
            throw new IllegalArgumentException(key + " must be > 0: " + key.substring(key.lastIndexOf('.') + 1) + "="
                + base.getValue(key).unwrapped());
        }
        return ms;
    }

    /** Reads {@code troupe.cluster} from a resolved config. */
    public static NodeSettings from(Config config) {
        Config c = config.getConfig("troupe.cluster");
        DeadMemberProbe.interval(config); // refused at start, naming the value, not when the probe starts
        int workers = c.getInt("workers");
        int threads = c.getInt("threads-per-worker");
        if (threads == 0) {
            threads = Math.max(1, Runtime.getRuntime().availableProcessors() / Math.max(1, workers));
        }
        return new NodeSettings(c.getString("system-name"), c.getString("hostname"), c.getInt("port"),
            c.getStringList("seeds"), c.getStringList("roles"), workers, threads,
            c.getDuration("acceptable-heartbeat-pause"), c.getDouble("failure-detector-threshold"),
            c.getDuration("sbr-stable-after"));
    }

    public NodeSettings withPort(int newPort) {
        return new NodeSettings(systemName, hostname, newPort, seeds, roles, workers, threadsPerWorker,
            acceptableHeartbeatPause, failureDetectorThreshold, sbrStableAfter);
    }

    public NodeSettings withSeeds(List<String> newSeeds) {
        return new NodeSettings(systemName, hostname, port, newSeeds, roles, workers, threadsPerWorker,
            acceptableHeartbeatPause, failureDetectorThreshold, sbrStableAfter);
    }

    public NodeSettings withThreadsPerWorker(int newThreads) {
        return new NodeSettings(systemName, hostname, port, seeds, roles, workers, newThreads,
            acceptableHeartbeatPause, failureDetectorThreshold, sbrStableAfter);
    }

    public NodeSettings withRoles(List<String> newRoles, int newWorkers) {
        return new NodeSettings(systemName, hostname, port, seeds, newRoles, newWorkers, threadsPerWorker,
            acceptableHeartbeatPause, failureDetectorThreshold, sbrStableAfter);
    }

    /**
     * The Pekko configuration of this node, on top of {@code base}; each call names a new node
     * instance ({@code troupe.cluster.instance-id}) for its {@link RefusedInputs}.
     */
    public Config pekkoConfig(Config base) {
        List<String> seedUris = new ArrayList<>();
        for (String s : seeds) {
            seedUris.add("pekko://" + systemName + "@" + s);
        }
        Config overlay = ConfigFactory.parseString(String.join("\n",
            "pekko.actor.provider = cluster",
            "pekko.actor.allow-java-serialization = off",
            "pekko.actor.warn-about-java-serializer-usage = off",
            "pekko.actor.serializers.troupe-kryo = \"" + TroupeKryoSerializer.class.getName() + "\"",
            "pekko.actor.serialization-bindings { \"" + CrossNodeMessage.class.getName() + "\" = troupe-kryo }",
            "pekko.remote.artery.transport = tcp",
            "pekko.cluster.downing-provider-class = \"org.apache.pekko.cluster.sbr.SplitBrainResolverProvider\"",
            "pekko.cluster.split-brain-resolver.active-strategy = keep-majority",
            "pekko.cluster.jmx.multi-mbeans-in-same-jvm = on",
            "pekko.loglevel = WARNING",
            "pekko.log-dead-letters = off",
            "pekko.coordinated-shutdown.exit-jvm = off",
            // as reference.conf, whichever reference.conf the class path lists first (see the root pom)
            "pekko.fail-mixed-versions = off",
            "pekko.cluster.configuration-compatibility-check.enforce-on-join = on",
            "pekko.cluster.configuration-compatibility-check.checkers.troupe-protocol = \""
                + ProtocolVersionCheck.class.getName() + "\""))
            .withValue(ProtocolVersionCheck.KEY, ConfigValueFactory.fromAnyRef(ProtocolVersionCheck.ADVERTISED))
            .withValue(ProtocolVersionCheck.INSTANCE_KEY,
                ConfigValueFactory.fromAnyRef(java.util.UUID.randomUUID().toString()))
            .withValue("pekko.remote.artery.canonical.hostname", ConfigValueFactory.fromAnyRef(hostname))
            .withValue("pekko.remote.artery.canonical.port", ConfigValueFactory.fromAnyRef(port))
            .withValue("pekko.cluster.seed-nodes", ConfigValueFactory.fromIterable(seedUris))
            .withValue("pekko.cluster.roles", ConfigValueFactory.fromIterable(roles))
            .withValue("pekko.cluster.failure-detector.acceptable-heartbeat-pause",
                ConfigValueFactory.fromAnyRef(acceptableHeartbeatPause.toMillis() + "ms"))
            .withValue("pekko.cluster.failure-detector.threshold",
                ConfigValueFactory.fromAnyRef(failureDetectorThreshold))
            .withValue("pekko.cluster.split-brain-resolver.stable-after",
                ConfigValueFactory.fromAnyRef(sbrStableAfter.toMillis() + "ms"))
            // how soon the coordinator singleton starts elsewhere once its node is removed, and how
            // soon a downed node is removed (troupe.cluster keys, read where the node's Pekko config is made)
            .withValue("pekko.cluster.down-removal-margin", ConfigValueFactory.fromAnyRef(
                durationMs(base, "troupe.cluster.singleton-removal-margin", DEFAULT_SINGLETON_REMOVAL_MARGIN) + "ms"))
            .withValue("pekko.cluster.leader-actions-interval", ConfigValueFactory.fromAnyRef(
                durationMs(base, "troupe.cluster.leader-actions-interval", DEFAULT_LEADER_ACTIONS_INTERVAL) + "ms"))
            .withValue("pekko.cluster.unreachable-nodes-reaper-interval", ConfigValueFactory.fromAnyRef(
                durationMs(base, "troupe.cluster.unreachable-check-interval", DEFAULT_UNREACHABLE_CHECK_INTERVAL)
                + "ms"))
            .withValue("pekko.cluster.gossip-interval", ConfigValueFactory.fromAnyRef(
                durationMs(base, "troupe.cluster.gossip-interval", DEFAULT_GOSSIP_INTERVAL) + "ms"))
            .withValue("pekko.cluster.failure-detector.heartbeat-interval", ConfigValueFactory.fromAnyRef(
                durationMs(base, "troupe.cluster.heartbeat-interval", DEFAULT_HEARTBEAT_INTERVAL) + "ms"));
        return ClusterSecurity.from(base).pekkoTlsOverlay().withFallback(overlay).withFallback(base).resolve();
    }
}
