package io.troupe.runtime.testkit;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/** File states tests set up: a directory copied as it is (a state a crash leaves), a file made undeletable. */
public final class TestFiles {
    private TestFiles() {
    }

    /** Copies directory {@code from} with everything under it to {@code to} (created, with its parents). */
    public static void copyTree(Path from, Path to) throws IOException {
        List<Path> all;
        try (Stream<Path> s = Files.walk(from)) {
            all = s.toList();
        }
        for (Path p : all) {
            Path target = to.resolve(from.relativize(p).toString());
            if (Files.isDirectory(p)) {
                Files.createDirectories(target);
            } else {
                Files.copy(p, target);
            }
        }
    }

    /**
     * Runs {@code chattr flag file} ({@code +i}: a file even root cannot delete or replace; {@code -i}: undone);
     * false when it fails (no such tool, a file system without the attribute, no CAP_LINUX_IMMUTABLE), so a test
     * can skip saying why.
     */
    public static boolean chattr(String flag, Path file) {
        try {
            Process p = new ProcessBuilder("chattr", flag, file.toString()).redirectErrorStream(true).start();
            if (!p.waitFor(10, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                return false;
            }
            return p.exitValue() == 0;
        } catch (IOException e) {
            return false;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }
}
