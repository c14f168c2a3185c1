package io.troupe.runtime.transport;

import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;

/**
 * The marker file that says Troupe created an Aeron directory. A media driver deletes its directory
 * on start (what a crashed driver left) and on close, so Troupe launches one only in a directory that
 * does not exist yet or that holds this marker: a directory someone else made is never deleted.
 */
public final class DriverDirectory {
    /** Name of the marker file inside a driver directory Troupe created. */
    public static final String MARKER = "troupe-driver.marker";

    private DriverDirectory() {
    }

    /**
     * @throws IllegalStateException naming the directory when it exists without the marker
     */
    static void checkOwned(File dir) {
        if (dir.exists() && !new File(dir, MARKER).isFile()) {
            throw new IllegalStateException("refusing aeron dir " + dir + ": it exists and was not created by Troupe"
                + " (no " + MARKER + " in it), and a media driver deletes its directory; remove it yourself or name"
                + " a new one");
        }
    }

    /** Writes the marker into a directory a driver Troupe launched has just created. */
    static void mark(File dir) {
        try {
            Files.writeString(new File(dir, MARKER).toPath(), "created by a Troupe media driver, pid "
                + ProcessHandle.current().pid() + "\n");
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + MARKER + " in aeron dir " + dir, e);
        }
    }
}
