package io.troupe.actors.cluster;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import io.troupe.runtime.transport.FrameAuthKey;
import io.troupe.runtime.transport.TransportSettings;
import java.nio.file.Path;
import java.util.Locale;

/** Reads {@code troupe.transport} (reference.conf) into the data plane's validated settings. */
public final class TransportConfig {
    private TransportConfig() {
    }

    /** @throws IllegalArgumentException naming the key and value that cannot be used */
    public static TransportSettings from(Config config) {
        try {
            Config c = config.getConfig("troupe.transport");
            String dir = c.getString("aeron-dir");
            return new TransportSettings(dir.isEmpty() ? null : dir, c.getBoolean("external-driver"),
                io.aeron.driver.ThreadingMode.valueOf(c.getString("threading-mode").toUpperCase(Locale.ROOT)),
                intBytes(c, "term-length"), intBytes(c, "mtu"), intBytes(c, "ipc-mtu"), intBytes(c, "chunk"),
                intBytes(c, "socket-buffer"), c.getBytes("receive-budget"), c.getInt("receive-slots"),
                c.getDuration("connect-timeout").toNanos(), c.getDuration("back-pressure-timeout").toNanos(),
                c.getDuration("peer-lost-timeout").toNanos(), c.getBoolean("crc"), c.getBytes("local-copy-min"),
                c.getString("udp-bind-host"), c.getInt("udp-port"), c.getBoolean("ipc-crc"),
                intBytes(c, "receiver-window"), intBytes(c, "loopback-mtu"), c.getBytes("ipc-ring-min"),
                c.getDouble("udp-loss-rate"), authKey(c), c.getLong("udp-corrupt-nth"));
        } catch (ConfigException e) {
            throw new IllegalArgumentException("bad troupe.transport setting: " + e.getMessage(), e);
        }
    }

    /** The data plane's auth key, by value or from a file (never both), or null; errors never name the key. */
    private static FrameAuthKey authKey(Config c) {
        String value = c.hasPath("auth-key") ? c.getString("auth-key") : "";
        String file = c.hasPath("auth-key-file") ? c.getString("auth-key-file") : "";
        if (!value.isEmpty() && !file.isEmpty()) {
            throw new IllegalArgumentException("set troupe.transport.auth-key or troupe.transport.auth-key-file, not "
                + "both: auth-key-file=" + file);
        }
        try {
            return !value.isEmpty() ? FrameAuthKey.ofValue(value)
                : !file.isEmpty() ? FrameAuthKey.ofFile(Path.of(file)) : null;
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("bad troupe.transport.auth-key" + (file.isEmpty() ? "" : "-file") + ": "
                + e.getMessage(), e);
        }
    }

    private static int intBytes(Config c, String key) {
        long v = c.getBytes(key);
        if (v > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("troupe.transport." + key + " too large: " + v + " bytes");
        }
        return (int) v;
    }

}
