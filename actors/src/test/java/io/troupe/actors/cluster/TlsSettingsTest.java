package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code troupe.cluster.tls} is checked when read: stores that are missing, unreadable as stores, opened with a
 * wrong password, a key store without a private key, a wrong key password, and protocols older than TLS 1.2
 * are refused with an error naming the setting and file and never the password; the settings print no
 * password. Certificates from scripts/make-certs.sh (password {@code changeit}).
 */
@Timeout(180)
class TlsSettingsTest {
    @TempDir
    static Path dir;
    private static Path keyStore;
    private static Path trustStore;

    @BeforeAll
    static void makeCertificates() throws Exception {
        TestCertificates.make(dir.resolve("certs"));
        keyStore = dir.resolve("certs/127.0.0.1.p12");
        trustStore = dir.resolve("certs/truststore.p12");
    }

    private static Config tls(Object keys, String keysPassword, String keyPassword, Object trusted,
                              String trustedPassword, String protocol) {
        return ConfigFactory.parseString(String.join("\n",
            "troupe.cluster.tls.enabled = on",
            "troupe.cluster.tls.key-store = \"" + keys + "\"",
            "troupe.cluster.tls.key-store-password = \"" + keysPassword + "\"",
            "troupe.cluster.tls.key-password = \"" + keyPassword + "\"",
            "troupe.cluster.tls.trust-store = \"" + trusted + "\"",
            "troupe.cluster.tls.trust-store-password = \"" + trustedPassword + "\"",
            "troupe.cluster.tls.protocol = \"" + protocol + "\"")).withFallback(ConfigFactory.load()).resolve();
    }

    /** The error reading {@code config}; it must name {@code named} and none of the passwords tried. */
    private static String refused(Config config, String named, String... passwords) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ClusterSecurity.from(config));
        String m = e.getMessage();
        assertTrue(m.contains(named), "names " + named + ": " + m);
        for (String p : passwords) {
            assertFalse(m.contains(p), "shows a password: " + m);
        }
        return m;
    }

    @Test
    void shouldOpenGoodStoresAndNeverPrintAPassword() {
        ClusterSecurity s = ClusterSecurity.from(tls(keyStore, "changeit", "", trustStore, "changeit", "TLSv1.3"));
        assertTrue(s.tls().enabled());
        assertFalse(s.toString().contains("changeit"), s.toString());
        assertFalse(s.tls().toString().contains("changeit"), s.tls().toString());
        assertTrue(s.tls().toString().contains(keyStore.toString()), "the files are shown: " + s.tls());
        ClusterSecurity.from(tls(keyStore, "changeit", "changeit", trustStore, "changeit", "TLSv1.2"));
    }

    @Test
    void shouldRefuseAWrongPasswordNamingTheFileNotThePassword() {
        String m = refused(tls(keyStore, "wrong-key-store-pass", "", trustStore, "changeit", "TLSv1.3"),
            keyStore.toString(), "wrong-key-store-pass", "changeit");
        assertTrue(m.contains("key-store") && m.contains("wrong password"), m);
        m = refused(tls(keyStore, "changeit", "", trustStore, "wrong-trust-pass", "TLSv1.3"), trustStore.toString(),
            "wrong-trust-pass", "changeit");
        assertTrue(m.contains("trust-store") && m.contains("wrong password"), m);
        m = refused(tls(keyStore, "changeit", "wrong-key-pass", trustStore, "changeit", "TLSv1.3"),
            keyStore.toString(), "wrong-key-pass", "changeit");
        assertTrue(m.contains("key-password"), m);
    }

    @Test
    void shouldRefuseStoresThatAreMissingNotStoresOrHoldNoKey() throws Exception {
        Path missing = dir.resolve("missing.p12");
        refused(tls(missing, "changeit", "", trustStore, "changeit", "TLSv1.3"), missing.toString(), "changeit");
        refused(tls(keyStore, "changeit", "", dir, "changeit", "TLSv1.3"), dir.toString(), "changeit");
        Path text = Files.writeString(dir.resolve("not-a-store.p12"), "not a key store\n", StandardCharsets.UTF_8);
        refused(tls(text, "changeit", "", trustStore, "changeit", "TLSv1.3"), text.toString(), "changeit");
        String m = refused(tls(trustStore, "changeit", "", trustStore, "changeit", "TLSv1.3"), trustStore.toString(),
            "changeit");
        assertTrue(m.contains("no private key"), m);
    }

    @Test
    void shouldRefuseProtocolsOlderThanTls12() {
        for (String old : new String[] {"TLSv1.1", "TLSv1", "SSLv3", "TLS"}) {
            String m = refused(tls(keyStore, "changeit", "", trustStore, "changeit", old), "protocol", "changeit");
            assertTrue(m.contains("'" + old + "'"), m);
        }
    }
}
