package io.troupe.actors.metrics;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;

/**
 * {@code troupe.metrics} (reference.conf), validated once.
 *
 * @param enabled  whether {@code troupe node} serves metrics
 * @param hostname the address the endpoint binds ("" = the node's own {@code troupe.cluster.hostname})
 * @param port     TCP port of the endpoint; 0 picks a free one
 */
public record MetricsSettings(boolean enabled, String hostname, int port) {
    /** The endpoint's path. */
    public static final String PATH = "/metrics";

    public MetricsSettings {
        if (port < 0 || port > 65535) {
            throw new IllegalArgumentException("troupe.metrics.port must be in 0..65535: port=" + port);
        }
    }

    /** Reads {@code troupe.metrics}; an empty hostname becomes the node's cluster hostname. */
    public static MetricsSettings from(Config config) {
        try {
            Config c = config.getConfig("troupe.metrics");
            String host = c.getString("hostname");
            return new MetricsSettings(c.getBoolean("enabled"),
                host.isEmpty() ? config.getString("troupe.cluster.hostname") : host, c.getInt("port"));
        } catch (ConfigException e) {
            throw new IllegalArgumentException("bad troupe.metrics setting: " + e.getMessage(), e);
        }
    }
}
