package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

/** Certificates for tests of TLS links, made by scripts/make-certs.sh, and the settings that use them. */
public final class TestCertificates {
    private TestCertificates() {
    }

    /** Makes a CA of its own in {@code dir} with a key store for 127.0.0.1 (password {@code changeit}). */
    public static void make(Path dir) throws Exception {
        ProcessBuilder pb = new ProcessBuilder("bash", "../scripts/make-certs.sh", dir.toString(), "127.0.0.1")
            .redirectErrorStream(true);
        pb.environment().put("JAVA_HOME", System.getProperty("java.home"));
        Process p = pb.start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "make-certs.sh did not end");
        assertEquals(0, p.exitValue(), out);
    }

    /** {@code troupe.cluster.tls} on, with the key and trust stores {@link #make} wrote in {@code dir}. */
    public static Config tls(Path dir) {
        return ConfigFactory.parseString(String.join("\n",
            "troupe.cluster.tls.enabled = on",
            "troupe.cluster.tls.key-store = \"" + dir.resolve("127.0.0.1.p12") + "\"",
            "troupe.cluster.tls.key-store-password = changeit",
            "troupe.cluster.tls.trust-store = \"" + dir.resolve("truststore.p12") + "\"",
            "troupe.cluster.tls.trust-store-password = changeit"));
    }
}
