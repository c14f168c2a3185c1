package io.troupe.actors.cli;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigValue;
import com.typesafe.config.ConfigValueType;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.TreeSet;

/**
 * A {@code --config FILE}: parsed on its own, then checked against reference.conf before it is laid over
 * it, so that a misspelt key is refused with its name and line instead of silently leaving its default.
 * Checked: every section directly under {@code troupe} (a file may set {@code troupe.cluster} for a node
 * and {@code troupe.train} for a job alike), and every key under {@code troupe.train}, which reference.conf
 * lists in full. Keys outside {@code troupe} ({@code pekko.*}) are Pekko's to read.
 */
final class ConfigFiles {
    private ConfigFiles() {
    }

    /**
     * The file, parsed (not resolved, so that it can be laid over another config).
     *
     * @throws UsageException naming the file when it is missing, does not parse, or sets a key reference.conf
     *     does not know
     */
    static Config parse(Path file) {
        if (!Files.isRegularFile(file)) {
            throw new UsageException("--config: no such file '" + file + "'");
        }
        Config parsed;
        try {
            parsed = ConfigFactory.parseFile(file.toFile());
        } catch (ConfigException e) {
            throw new UsageException("--config " + file + ": " + e.getMessage());
        }
        requireKnownKeys(file, parsed, ConfigFactory.defaultReference());
        return parsed;
    }

    /** Refuses the first key of {@code parsed} under {@code troupe} that {@code reference} does not know. */
    static void requireKnownKeys(Path file, Config parsed, Config reference) {
        if (!parsed.hasPath("troupe") || parsed.getValue("troupe").valueType() != ConfigValueType.OBJECT) {
            return;
        }
        Config troupe = parsed.getConfig("troupe");
        Config known = reference.getConfig("troupe");
        for (String section : new TreeSet<>(troupe.root().keySet())) {
            if (!known.root().containsKey(section)) {
                throw unknown(file, "troupe." + section, troupe.root().get(section), known.root().keySet());
            }
        }
        if (troupe.hasPath("train") && troupe.getValue("train").valueType() == ConfigValueType.OBJECT) {
            Config train = known.getConfig("train");
            for (Map.Entry<String, ConfigValue> e : troupe.getConfig("train").entrySet()) {
                if (!train.hasPathOrNull(e.getKey())) {
                    throw unknown(file, "troupe.train." + e.getKey(), e.getValue(), train.root().keySet());
                }
            }
        }
    }

    private static UsageException unknown(Path file, String key, ConfigValue value, java.util.Set<String> known) {
        int line = value.origin().lineNumber();
        return new UsageException("--config " + file + (line > 0 ? ": " + line : "") + ": unknown key '" + key
            + "'; known there: " + String.join(", ", new TreeSet<>(known)));
    }
}
