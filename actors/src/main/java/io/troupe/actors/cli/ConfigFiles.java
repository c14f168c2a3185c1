package io.troupe.actors.cli;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigUtil;
import com.typesafe.config.ConfigValue;
import com.typesafe.config.ConfigValueType;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * A {@code --config FILE}: parsed on its own, then checked against reference.conf before it is laid over
 * it, so that a misspelt key is refused with its name and line instead of silently leaving its default.
 * Checked: every key under {@code troupe} (a file may set {@code troupe.cluster} for a node and {@code troupe.train}
 * for a job alike), which reference.conf lists in full; the message names the key, its line, the nearest known key
 * and the keys beside it. Keys outside {@code troupe} ({@code pekko.*}) are Pekko's to read. System properties
 * ({@code -Dtroupe.transport.udp-port=...}) under the same sections are checked the same way by
 * {@link #requireKnownProperties}.
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
        requireKnownKeys(file, parsed, reference());
        return parsed;
    }

    /**
     * reference.conf alone: the keys Troupe reads. Not {@code ConfigFactory.defaultReference()}, which lays the
     * system properties over it, so that a {@code -D} key would be known because it is set.
     */
    static Config reference() {
        return ConfigFactory.defaultReferenceUnresolved()
            .resolve(com.typesafe.config.ConfigResolveOptions.defaults().setAllowUnresolved(true));
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
                ConfigValue v = troupe.root().get(section);
                int line = v.origin().lineNumber();
                throw new UsageException("--config " + file + (line > 0 ? ": " + line : "") + ": unknown key 'troupe."
                    + section + "'" + nearestOf("troupe.", known, section) + "; known there: "
                    + String.join(", ", new TreeSet<>(known.root().keySet())));
            }
        }
        for (String section : new TreeSet<>(troupe.root().keySet())) {
            if (troupe.getValue(section).valueType() == ConfigValueType.OBJECT
                && known.getValue(section).valueType() == ConfigValueType.OBJECT) {
                Config listed = known.getConfig(section);
                for (Map.Entry<String, ConfigValue> e : new java.util.TreeMap<>(troupe.getConfig(section).entrySet()
                    .stream().collect(java.util.stream.Collectors.toMap(Map.Entry::getKey, Map.Entry::getValue)))
                    .entrySet()) {
                    if (!listed.hasPathOrNull(e.getKey())) {
                        int line = e.getValue().origin().lineNumber();
                        throw new UsageException("--config " + file + (line > 0 ? ": " + line : "")
                            + ": unknown key 'troupe." + section + "." + e.getKey() + "'"
                            + nearestOf("troupe." + section + ".", listed, e.getKey()) + "; known there: "
                            + String.join(", ", new TreeSet<>(keysAround(listed, e.getKey()))));
                    }
                }
            }
        }
    }

    /**
     * Refuses the first system property under one of reference.conf's {@code troupe} sections (what
     * {@code ConfigFactory.load()} lays over it: {@code -Dtroupe.cluster.port=...}) that reference.conf does not
     * list. Properties under other {@code troupe.} prefixes are the JVM switches of their own
     * ({@code troupe.cpu.vectorKernels}, {@code troupe.cuda.emulator}) and pass.
     *
     * @throws UsageException naming the property, the nearest known key and the keys beside it
     */
    static void requireKnownProperties(java.util.Properties properties, Config reference) {
        Config known = reference.getConfig("troupe");
        for (String name : new TreeSet<>(properties.stringPropertyNames())) {
            if (!name.startsWith("troupe.")) {
                continue;
            }
            String rest = name.substring("troupe.".length());
            int dot = rest.indexOf('.');
            String section = dot < 0 ? rest : rest.substring(0, dot);
            if (dot < 0 || !known.root().containsKey(section)
                || known.getValue(section).valueType() != ConfigValueType.OBJECT) {
                continue;
            }
            String key = rest.substring(dot + 1);
            Config listed = known.getConfig(section);
            boolean listedKey;
            try {
                listedKey = listed.hasPathOrNull(key);
            } catch (ConfigException.BadPath e) {
                listedKey = false;
            }
            if (!listedKey) {
                throw new UsageException("-D" + name + ": unknown key '" + name + "'"
                    + nearestOf("troupe." + section + ".", listed, key) + "; known there: "
                    + String.join(", ", new TreeSet<>(keysAround(listed, key))));
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

    /**
     * "; nearest known key 'K'" for the known key closest to {@code path} (a path under {@code listed}, written
     * after {@code prefix}) at the level where it leaves what {@code listed} knows, or "" when none is close.
     */
    private static String nearestOf(String prefix, Config listed, String path) {
        List<String> parts = ConfigUtil.splitPath(path);
        Config level = listed;
        StringBuilder known = new StringBuilder(prefix);
        int i = 0;
        while (i < parts.size() - 1 && level.root().containsKey(parts.get(i))
            && level.root().get(parts.get(i)).valueType() == ConfigValueType.OBJECT) {
            level = level.getConfig(ConfigUtil.quoteString(parts.get(i)));
            known.append(parts.get(i)).append('.');
            i++;
        }
        String wrong = parts.get(i);
        String best = null;
        int bestDistance = Integer.MAX_VALUE;
        for (String k : new TreeSet<>(level.root().keySet())) {
            int d = io.troupe.actors.EditDistance.of(wrong, k);
            if (d < bestDistance) {
                best = k;
                bestDistance = d;
            }
        }
        return best != null && bestDistance <= Math.max(2, wrong.length() / 3)
            ? "; nearest known key '" + known + best + "'" : "";
    }
}
