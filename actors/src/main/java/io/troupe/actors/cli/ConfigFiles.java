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
 * and {@code troupe.train} for a job alike), and every key under {@code troupe.train} and {@code troupe.serve},
 * which reference.conf lists in full. Keys outside {@code troupe} ({@code pekko.*}) are Pekko's to read.
 */
final class ConfigFiles {
    /** The sections under {@code troupe} whose every key reference.conf lists (nothing is read with a fallback). */
    private static final java.util.List<String> LISTED_IN_FULL = java.util.List.of("train", "serve");

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
        for (String section : LISTED_IN_FULL) {
            if (troupe.hasPath(section) && troupe.getValue(section).valueType() == ConfigValueType.OBJECT) {
                Config listed = known.getConfig(section);
                for (Map.Entry<String, ConfigValue> e : troupe.getConfig(section).entrySet()) {
                    if (!listed.hasPathOrNull(e.getKey())) {
                        throw unknown(file, "troupe." + section + "." + e.getKey(), e.getValue(),
                            keysAround(listed, e.getKey()));
                    }
                }
            }
        }
    }

    /** The keys beside {@code path}'s nearest known parent in {@code listed} (for a message). */
    private static java.util.Set<String> keysAround(Config listed, String path) {
        int dot = path.lastIndexOf('.');
        String parent = dot < 0 ? "" : path.substring(0, dot);
        boolean object = !parent.isEmpty() && listed.hasPath(parent)
            && listed.getValue(parent).valueType() == ConfigValueType.OBJECT;
        return object ? listed.getConfig(parent).root().keySet() : listed.root().keySet();
    }

    private static UsageException unknown(Path file, String key, ConfigValue value, java.util.Set<String> known) {
        int line = value.origin().lineNumber();
        return new UsageException("--config " + file + (line > 0 ? ": " + line : "") + ": unknown key '" + key
            + "'; known there: " + String.join(", ", new TreeSet<>(known)));
    }
}
