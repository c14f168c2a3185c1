package io.troupe.actors.cluster;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigValueFactory;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.KeyStoreException;
import java.security.UnrecoverableKeyException;
import java.util.Collections;
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
     * Artery TLS settings ({@code troupe.cluster.tls}); mutual authentication is always on. When enabled,
     * both stores are opened here, so a missing or unreadable file, a wrong password, a key store without
     * a private key or a trust store without a certificate stops the node at start, the error naming the
     * setting and the file (never a password); the protocol is TLS 1.3 or 1.2. {@link #toString()} shows
     * no password.
     *
     * @param keyStore   this node's key and certificate chain (PKCS12 or JKS)
     * @param trustStore the CA certificates a peer's certificate must chain to
     */
    public record Tls(boolean enabled, String keyStore, String keyStorePassword, String keyPassword, String trustStore,
                      String trustStorePassword, String protocol, boolean hostnameVerification) {
        /** The protocols a link may use: TLS 1.3, or TLS 1.2 (older ones are broken and refused). */
        public static final List<String> PROTOCOLS = List.of("TLSv1.3", "TLSv1.2");

        public Tls {
            if (enabled) {
                if (!PROTOCOLS.contains(protocol)) {
                    throw new IllegalArgumentException("troupe.cluster.tls.protocol must be one of " + PROTOCOLS
                        + ": protocol='" + protocol + "'");
                }
                KeyStore keys = open("key-store", keyStore, keyStorePassword);
                checkPrivateKeys(keys, keyStore, keyPassword);
                KeyStore trusted = open("trust-store", trustStore, trustStorePassword);
                if (certificates(trusted, trustStore) == 0) {
                    throw new IllegalArgumentException("troupe.cluster.tls.trust-store holds no certificate: "
                        + "trust-store='" + trustStore + "'");
                }
            }
        }

        /** The store in {@code file} opened with {@code password}; errors name the setting and file only. */
        private static KeyStore open(String setting, String file, String password) {
            if (file.isEmpty() || !Files.isRegularFile(Path.of(file)) || !Files.isReadable(Path.of(file))) {
                throw new IllegalArgumentException("troupe.cluster.tls." + setting
                    + " must name a readable file when tls is enabled: " + setting + "='" + file + "'");
            }
            try {
                return KeyStore.getInstance(Path.of(file).toFile(), password.toCharArray());
            } catch (IOException e) {
                boolean wrongPassword = e.getCause() instanceof UnrecoverableKeyException;
                throw new IllegalArgumentException("troupe.cluster.tls." + setting + (wrongPassword
                    ? " cannot be opened with troupe.cluster.tls." + setting + "-password (wrong password): "
                    : " cannot be read as a PKCS12 or JKS store: ") + setting + "='" + file + "'"
                    + (wrongPassword ? "" : " (" + e.getClass().getSimpleName() + ")"));
            } catch (GeneralSecurityException e) {
                throw new IllegalArgumentException("troupe.cluster.tls." + setting
                    + " cannot be read as a PKCS12 or JKS store: " + setting + "='" + file + "' ("
                    + e.getClass().getSimpleName() + ")");
            }
        }

        /** Every private key in {@code keys} opens with {@code password}, and there is at least one. */
        private static void checkPrivateKeys(KeyStore keys, String file, String password) {
            int found = 0;
            try {
                for (String alias : Collections.list(keys.aliases())) {
                    if (keys.isKeyEntry(alias)) {
                        keys.getKey(alias, password.toCharArray());
                        found++;
                    }
                }
            } catch (UnrecoverableKeyException e) {
                throw new IllegalArgumentException("troupe.cluster.tls.key-password (or key-store-password) does "
                    + "not open the private key in troupe.cluster.tls.key-store: key-store='" + file + "'");
            } catch (GeneralSecurityException e) {
                throw new IllegalArgumentException("troupe.cluster.tls.key-store cannot be read: key-store='" + file
                    + "' (" + e.getClass().getSimpleName() + ")");
            }
            if (found == 0) {
                throw new IllegalArgumentException("troupe.cluster.tls.key-store holds no private key (this node's "
                    + "key and certificate chain): key-store='" + file + "'");
            }
        }

        private static int certificates(KeyStore store, String file) {
            try {
                int n = 0;
                for (String alias : Collections.list(store.aliases())) {
                    n += store.isCertificateEntry(alias) || store.getCertificate(alias) != null ? 1 : 0;
                }
                return n;
            } catch (KeyStoreException e) {
                throw new IllegalArgumentException("troupe.cluster.tls.trust-store cannot be read: trust-store='"
                    + file + "'");
            }
        }

        /** The settings, passwords redacted. */
        @Override
        public String toString() {
            return "Tls[enabled=" + enabled + ", keyStore=" + keyStore + ", keyStorePassword=[redacted], "
                + "keyPassword=[redacted], trustStore=" + trustStore + ", trustStorePassword=[redacted], protocol="
                + protocol + ", hostnameVerification=" + hostnameVerification + "]";
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
