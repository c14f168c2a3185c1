package io.troupe.actors.cluster;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigValueFactory;
import java.util.Locale;

/**
 * {@code troupe.management} and {@code troupe.cluster.bootstrap} (reference.conf), validated once: Pekko
 * Management's HTTP endpoint on each node (liveness {@code /alive}, readiness {@code /ready}: this node is an
 * Up member of the cluster) and how a node finds its cluster. Both are off by default, so a local run opens
 * nothing more and joins by seeds as before.
 *
 * @param enabled               serve the management endpoint
 * @param hostname              the address it binds and advertises ("" = the node's {@code troupe.cluster.hostname});
 *                              with Kubernetes bootstrap, the pod's IP (discovery finds pods by IP)
 * @param port                  its TCP port (0: a free one, picked as it binds)
 * @param bootstrap             {@link Bootstrap#SEEDS} or {@link Bootstrap#KUBERNETES}
 * @param serviceName           the name pods are found by: label {@code app=<serviceName>} ({@code podLabelSelector})
 * @param podLabelSelector      the Kubernetes label selector, {@code %s} standing for {@code serviceName}
 * @param requiredContactPoints pods that must be found before the lowest-addressed one forms a new cluster
 *                              (the replica count: the layout's world size)
 */
public record ManagementSettings(boolean enabled, String hostname, int port, Bootstrap bootstrap, String serviceName,
                                 String podLabelSelector, int requiredContactPoints) {
    /** How a node finds its cluster. */
    public enum Bootstrap {
        /** {@code troupe.cluster.seeds}, or a new cluster when there are none. */
        SEEDS,
        /** Pekko Cluster Bootstrap, contact points found through the Kubernetes API. */
        KUBERNETES
    }

    /** The liveness probe's path on the management port. */
    public static final String LIVENESS_PATH = "/alive";
    /** The readiness probe's path on the management port. */
    public static final String READINESS_PATH = "/ready";
    /** The name of the container port that Kubernetes discovery looks up on each pod. */
    public static final String PORT_NAME = "management";

    public ManagementSettings {
        if (port < 0 || port > 65535) {
            throw new IllegalArgumentException("troupe.management.port must be in 0..65535: port=" + port);
        }
        if (bootstrap == Bootstrap.KUBERNETES && !enabled) {
            throw new IllegalArgumentException("troupe.cluster.bootstrap.method = kubernetes needs the management"
                + " endpoint (contact points talk over it): troupe.management.enabled=false");
        }
        if (requiredContactPoints < 1) {
            throw new IllegalArgumentException("troupe.cluster.bootstrap.required-contact-points must be >= 1: "
                + "required-contact-points=" + requiredContactPoints);
        }
    }

    /** Reads {@code troupe.management} and {@code troupe.cluster.bootstrap}; an empty hostname becomes the node's. */
    public static ManagementSettings from(Config config) {
        try {
            Config m = config.getConfig("troupe.management");
            Config b = config.getConfig("troupe.cluster.bootstrap");
            String method = b.getString("method");
            Bootstrap bootstrap;
            try {
                bootstrap = Bootstrap.valueOf(method.toUpperCase(Locale.ROOT));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("troupe.cluster.bootstrap.method must be seeds or kubernetes: "
                    + "method=" + method, e);
            }
            String host = m.getString("hostname");
            return new ManagementSettings(m.getBoolean("enabled"),
                host.isEmpty() ? config.getString("troupe.cluster.hostname") : host, m.getInt("port"), bootstrap,
                b.getString("service-name"), b.getString("pod-label-selector"), b.getInt("required-contact-points"));
        } catch (ConfigException e) {
            throw new IllegalArgumentException("bad troupe.management or troupe.cluster.bootstrap setting: "
                + e.getMessage(), e);
        }
    }

    /** True when the node finds its cluster through the Kubernetes API instead of seeds. */
    public boolean bootstrapsOnKubernetes() {
        return bootstrap == Bootstrap.KUBERNETES;
    }

    /**
     * The management endpoint's base URL as configured; with port 0, {@link TroupeNode#managementUrl()} has
     * the port it bound.
     */
    public String url() {
        return "http://" + hostname + ":" + port;
    }

    /**
     * Pekko's settings for these (none when the endpoint is off): the management HTTP address and probe paths,
     * and with Kubernetes bootstrap,
     * the discovery method, label selector, port name and contact-point count (no seed nodes then).
     */
    public Config pekkoOverlay() {
        if (!enabled) {
            return ConfigFactory.empty();
        }
        Config c = ConfigFactory.empty()
            .withValue("pekko.management.http.hostname", ConfigValueFactory.fromAnyRef(hostname))
            .withValue("pekko.management.http.port", ConfigValueFactory.fromAnyRef(port))
            .withValue("pekko.management.http.bind-hostname", ConfigValueFactory.fromAnyRef(hostname))
            .withValue("pekko.management.http.bind-port", ConfigValueFactory.fromAnyRef(port))
            .withValue("pekko.management.health-checks.liveness-path",
                ConfigValueFactory.fromAnyRef(LIVENESS_PATH.substring(1)))
            .withValue("pekko.management.health-checks.readiness-path",
                ConfigValueFactory.fromAnyRef(READINESS_PATH.substring(1)));
        if (bootstrapsOnKubernetes()) {
            String cpd = "pekko.management.cluster.bootstrap.contact-point-discovery.";
            c = c.withValue(cpd + "discovery-method", ConfigValueFactory.fromAnyRef("kubernetes-api"))
                .withValue(cpd + "service-name", ConfigValueFactory.fromAnyRef(serviceName))
                .withValue(cpd + "port-name", ConfigValueFactory.fromAnyRef(PORT_NAME))
                .withValue(cpd + "required-contact-point-nr", ConfigValueFactory.fromAnyRef(requiredContactPoints))
                .withValue("pekko.discovery.kubernetes-api.pod-label-selector",
                    ConfigValueFactory.fromAnyRef(podLabelSelector))
                .withValue("pekko.cluster.seed-nodes", ConfigValueFactory.fromIterable(java.util.List.of()));
        }
        return c;
    }
}
