package io.troupe.actors.cluster;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The directories ({@code troupe.cluster.allowed-roots}) under which a file path arriving from
 * another node must resolve. A path is made absolute against the working directory, normalised
 * ({@code ..} removed) and its longest existing prefix resolved through symbolic links before the
 * check, so neither {@code ../} nor a link leads outside.
 */
public final class AllowedRoots {
    private final List<Path> roots;

    /** @param roots directories; relative ones are taken from the working directory */
    public AllowedRoots(List<String> roots) {
        List<Path> r = new ArrayList<>();
        for (String s : roots) {
            if (s.isBlank()) {
                throw new IllegalArgumentException("troupe.cluster.allowed-roots entries must not be empty: " + roots);
            }
            r.add(real(Path.of(s)));
        }
        this.roots = List.copyOf(r);
    }

    /** The roots as real absolute paths. */
    public List<Path> roots() {
        return roots;
    }

    /**
     * Checks a path from the network; the empty string (no path) passes.
     *
     * @throws IllegalArgumentException naming the path, what it resolves to and the roots
     */
    public void check(String what, String path) {
        if (path == null || path.isEmpty()) {
            return;
        }
        Path resolved;
        try {
            resolved = real(Path.of(path));
        } catch (RuntimeException e) {
            throw new IllegalArgumentException(what + " '" + path + "' is not a usable path: " + e.getMessage(), e);
        }
        for (Path root : roots) {
            if (resolved.startsWith(root)) {
                return;
            }
        }
        throw new IllegalArgumentException(what + " '" + path + "' resolves to " + resolved
            + ", outside troupe.cluster.allowed-roots " + roots);
    }

    /** Absolute, normalised, with the longest existing prefix resolved through links. */
    static Path real(Path p) {
        Path abs = p.toAbsolutePath().normalize();
        Path existing = abs;
        while (existing != null && !Files.exists(existing)) {
            existing = existing.getParent();
        }
        if (existing == null) {
            return abs;
        }
        try {
            return existing.toRealPath().resolve(existing.relativize(abs)).normalize();
        } catch (IOException e) {
            return abs;
        }
    }
}
