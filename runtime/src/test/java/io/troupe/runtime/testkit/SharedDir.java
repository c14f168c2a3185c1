package io.troupe.runtime.testkit;

import java.nio.file.Files;
import java.nio.file.Path;

/** The team's shared folder beside the checkout ({@code ../shared}): golden values and data, for tests only. */
public final class SharedDir {
    private SharedDir() {
    }

    /** Resolves a path inside shared/, failing with a clear message when it is missing. */
    public static Path resolve(String relative) {
        String prop = System.getProperty("troupe.shared.dir");
        Path base = prop != null ? Path.of(prop) : Path.of("..", "shared");
        Path p = base.resolve(relative).normalize();
        if (!Files.exists(p)) {
            p = Path.of("..", "..", "shared").resolve(relative).normalize();
        }
        if (!Files.exists(p)) {
            throw new IllegalStateException("shared file not found: " + relative + " (looked under " + base.toAbsolutePath() + ")");
        }
        return p;
    }
}
