package io.troupe.actors.cluster;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigValueFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * How a node guards itself against what arrives over the network ({@code troupe.cluster} in
 * reference.conf), validated once: bounds on control messages, the roots that network paths must
 * resolve under, and Artery TLS with mutual authentication.
 *
 * @param maxMessageBytes     largest control message accepted (bytes)
 * @param maxCollectionLength largest array, list or string length a message may declare (count)
 * @param allowedRoots        where paths from other nodes must resolve
 * @param tls                 Artery over TLS, or off
 * @param allowedStageModules the stage-module factory classes a job may name besides the built-in GPT
 *                            ({@code troupe.cluster.allowed-stage-modules})
 */
public record ClusterSecurity(int maxMessageBytes, int maxCollectionLength, AllowedRoots allowedRoots, Tls tls,
                              List<String> allowedStageModules) {

    /**
     * Artery TLS settings ({@code troupe.cluster.tls}); mutual authentication is always on.
     *
     * @param keyStore   this node's key and certificate chain (PKCS12 or JKS)
     * @param trustStore the CA certificates a peer's certificate must chain to
     */
    public record Tls(boolean enabled, String keyStore, String keyStorePassword, String keyPassword, String trustStore,
                      String trustStorePassword, String protocol, boolean hostnameVerification) {
        public Tls {
            if (enabled) {
                for (String[] f : new String[][] {{"key-store", keyStore}, {"trust-store", trustStore}}) {
                    if (f[1].isEmpty() || !Files.isRegularFile(Path.of(f[1]))) {
                        throw new IllegalArgumentException("troupe.cluster.tls." + f[0]
                            + " must name a readable file when tls"
                            + " is enabled: " + f[0] + "='" + f[1] + "'");
                    }
                }
            }
        }

        /**
         * Pekko's settings for Artery TLS with mutual authentication, as an overlay on an actor
         * system's config (empty when TLS is off): the cluster's nodes and a server's stage link use it.
         */
        public Config pekkoOverlay() {
            if (!enabled) {
                return ConfigFactory.empty();
            }
            String p = "pekko.remote.artery.ssl.config-ssl-engine.";
            return ConfigFactory.parseString(String.join("\n",
                    "pekko.remote.artery.transport = tls-tcp",
                    p + "require-mutual-authentication = on",
                    "pekko.remote.artery.ssl.ssl-engine-provider = "
                        + "org.apache.pekko.remote.artery.tcp.ConfigSSLEngineProvider"))
                .withValue(p + "key-store", ConfigValueFactory.fromAnyRef(absolute(keyStore)))
                .withValue(p + "key-store-password", ConfigValueFactory.fromAnyRef(keyStorePassword))
                .withValue(p + "key-password", ConfigValueFactory.fromAnyRef(keyPassword))
                .withValue(p + "trust-store", ConfigValueFactory.fromAnyRef(absolute(trustStore)))
                .withValue(p + "trust-store-password", ConfigValueFactory.fromAnyRef(trustStorePassword))
                .withValue(p + "protocol", ConfigValueFactory.fromAnyRef(protocol))
                .withValue(p + "hostname-verification", ConfigValueFactory.fromAnyRef(hostnameVerification));
        }
    }

    public ClusterSecurity {
        if (maxMessageBytes < 1024) {
            throw new IllegalArgumentException("troupe.cluster.max-message-bytes must be >= 1024: " + maxMessageBytes);
        }
        if (maxCollectionLength < 1) {
            throw new IllegalArgumentException("troupe.cluster.max-collection-length must be >= 1: "
                + maxCollectionLength);
        }
        allowedStageModules = List.copyOf(allowedStageModules);
    }

    /** Reads the settings from a resolved config. */
    public static ClusterSecurity from(Config config) {
        try {
            Config c = config.getConfig("troupe.cluster");
            long max = c.getBytes("max-message-bytes");
            if (max > Integer.MAX_VALUE) {
                throw new IllegalArgumentException("troupe.cluster.max-message-bytes too large: " + max);
            }
            Config t = c.getConfig("tls");
            String keyPassword = t.getString("key-password");
            Tls tls = new Tls(t.getBoolean("enabled"), t.getString("key-store"), t.getString("key-store-password"),
                keyPassword.isEmpty() ? t.getString("key-store-password") : keyPassword, t.getString("trust-store"),
                t.getString("trust-store-password"), t.getString("protocol"), t.getBoolean("hostname-verification"));
            return new ClusterSecurity((int) max, c.getInt("max-collection-length"),
                new AllowedRoots(c.getStringList("allowed-roots")), tls, c.getStringList("allowed-stage-modules"));
        } catch (ConfigException e) {
            throw new IllegalArgumentException("bad troupe.cluster setting: " + e.getMessage(), e);
        }
    }

    /** Pekko's settings for Artery TLS (empty when TLS is off), as an overlay. */
    Config pekkoTlsOverlay() {
        return tls.pekkoOverlay();
    }

    private static String absolute(String file) {
        return Path.of(file).toAbsolutePath().toString();
    }
}
