package io.troupe.actors.serve;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigValueFactory;
import io.troupe.actors.cluster.ClusterSecurity;
import io.troupe.actors.cluster.CrossNodeMessage;
import io.troupe.actors.cluster.TransportConfig;
import io.troupe.actors.cluster.TroupeKryoSerializer;
import io.troupe.runtime.transport.TransportSettings;
import java.time.Duration;
import java.util.List;

/**
 * Where a server's later pipeline stages run ({@code troupe serve --stage-hosts}) and how it talks to
 * them: {@code troupe.serve.stage-link} in reference.conf. No hosts: every stage runs in the server's
 * process.
 *
 * @param hosts          {@code host:port} of the stage hosts for stages 1..N-1, in order, then spares
 *                       (empty: in-process)
 * @param hostname       the address this process's control plane binds and advertises
 * @param port           its port (0: any free one)
 * @param lossTimeout    how long a stage host may be silent before it counts as lost
 * @param connectTimeout how long one wiring (load, connect) may take before it is retried
 * @param retryInterval  the pause between wirings while a stage host is missing
 * @param stepTimeout    how long a stage may stay inside one step (its host's heartbeat answers say so), or a
 *                       step sent down the pipeline go unanswered (with a loss timeout more), before its host
 *                       counts as lost (stuck)
 * @param tls            the control link over TLS with mutual authentication ({@code troupe.cluster.tls}),
 *                       or off
 * @param transport      the data plane's settings on this host ({@code troupe.transport}: UDP ports,
 *                       the frames' authentication key)
 */
public record StageLinks(List<String> hosts, String hostname, int port, Duration lossTimeout,
                         Duration connectTimeout, Duration retryInterval, Duration stepTimeout,
                         ClusterSecurity.Tls tls, TransportSettings transport) {
    public StageLinks {
        hosts = List.copyOf(hosts);
        for (String h : hosts) {
            int colon = h.lastIndexOf(':');
            if (colon <= 0 || !h.substring(colon + 1).matches("\\d{1,5}")
                || Integer.parseInt(h.substring(colon + 1)) > 65535 || Integer.parseInt(h.substring(colon + 1)) == 0) {
                throw new IllegalArgumentException("a stage host must be HOST:PORT with a port in [1, 65535]: " + h);
            }
        }
        if (port < 0 || port > 65535) {
            throw new IllegalArgumentException("troupe.serve.stage-link.port must be in [0, 65535]: " + port);
        }
        positive("loss-timeout", lossTimeout);
        positive("connect-timeout", connectTimeout);
        positive("retry-interval", retryInterval);
        positive("step-timeout", stepTimeout);
    }

    private static void positive(String key, Duration d) {
        if (d == null || d.isNegative() || d.isZero()) {
            throw new IllegalArgumentException("troupe.serve.stage-link." + key + " must be > 0: " + key + "="
                + (d == null ? "null" : d.toNanos() % 1_000_000 == 0 ? d.toMillis() + "ms" : d.toNanos() + "ns"));
        }
    }

    /**
     * Reads {@code troupe.serve.stage-link}, {@code troupe.cluster.tls} and {@code troupe.transport} of
     * {@code root}, with {@code hosts}.
     */
    public static StageLinks from(Config root, List<String> hosts) {
        try {
            Config c = root.getConfig("troupe.serve.stage-link");
            return new StageLinks(hosts, c.getString("hostname"), c.getInt("port"), c.getDuration("loss-timeout"),
                c.getDuration("connect-timeout"), c.getDuration("retry-interval"), c.getDuration("step-timeout"),
                ClusterSecurity.from(root).tls(), TransportConfig.from(root));
        } catch (ConfigException e) {
            throw new IllegalArgumentException("bad troupe.serve.stage-link setting: " + e.getMessage(), e);
        }
    }

    /** These links with the control plane at {@code hostname:port} (a stage host's own address). */
    StageLinks at(String hostname, int port) {
        return new StageLinks(hosts, hostname, port, lossTimeout, connectTimeout, retryInterval, stepTimeout, tls,
            transport);
    }

    public boolean remote() {
        return !hosts.isEmpty();
    }

    /**
     * The Pekko settings of a process on these links (the server or a stage host): remote actors over
     * Artery TCP (TLS with mutual authentication when {@link #tls} is on) at {@link #hostname}:{@link #port},
     * only {@link CrossNodeMessage}s (Kryo, registration required) across.
     */
    Config pekko(Config base) {
        return tls.pekkoOverlay().withFallback(ConfigFactory.parseString(String.join("\n",
                "pekko.actor.provider = remote",
                "pekko.actor.allow-java-serialization = off",
                "pekko.actor.warn-about-java-serializer-usage = off",
                "pekko.actor.serializers.troupe-kryo = \"" + TroupeKryoSerializer.class.getName() + "\"",
                "pekko.actor.serialization-bindings { \"" + CrossNodeMessage.class.getName() + "\" = troupe-kryo }",
                "pekko.remote.artery.transport = tcp",
                "pekko.remote.warn-about-direct-use = off",
                // a server and its stage hosts are not a cluster; they heartbeat each other with plain messages
                "pekko.remote.warn-unsafe-watch-outside-cluster = off",
                "pekko.loglevel = WARNING",
                "pekko.stdout-loglevel = WARNING",
                "pekko.log-dead-letters = off",
                "pekko.coordinated-shutdown.exit-jvm = off",
                // the command orders its own stop (drain, then the actor system); no JVM hook of Pekko's races it
                "pekko.coordinated-shutdown.run-by-jvm-shutdown-hook = off",
                "pekko.fail-mixed-versions = off"))
            .withValue("pekko.remote.artery.canonical.hostname", ConfigValueFactory.fromAnyRef(hostname))
            .withValue("pekko.remote.artery.canonical.port", ConfigValueFactory.fromAnyRef(port)))
            .withFallback(base);
    }
}
