package io.troupe.runtime.transport;

import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.util.concurrent.ThreadLocalRandom;
import org.agrona.IoUtil;

/**
 * The marker file that says Troupe created an Aeron directory, and the names of the directories an
 * embedded driver generates. A media driver deletes its directory on start (what a crashed driver
 * left) and on close, so Troupe launches one only in a directory that does not exist yet or that
 * holds this marker: a directory someone else made is never deleted.
 *
 * <p>A generated directory is {@code <base>/troupe-<pid>-<n>-<random hex>}: {@code <base>} is
 * {@code /dev/shm} where it exists, else {@code java.io.tmpdir}; {@code <pid>} is the process that
 * launched the driver, {@code <n>} counts its launches.
 */
public final class DriverDirectory {
    /** Name of the marker file inside a driver directory Troupe created. */
    public static final String MARKER = "troupe-driver.marker";
    /** Start of a generated directory's name, followed by the pid of the process that launched the driver. */
    static final String GENERATED_PREFIX = "troupe-";

    private DriverDirectory() {
    }

    /** The directory that holds generated driver directories: {@code /dev/shm} where it exists, else the temp dir. */
    static String baseDir() {
        File shm = new File("/dev/shm");
        return shm.isDirectory() ? shm.getPath() : System.getProperty("java.io.tmpdir");
    }

    /** A new generated directory for this process's {@code launch}-th driver. */
    static String generated(int launch) {
        return baseDir() + File.separator + GENERATED_PREFIX + ProcessHandle.current().pid() + "-" + launch + "-"
            + Integer.toHexString(ThreadLocalRandom.current().nextInt());
    }

    /**
     * Deletes the generated directories of process {@code pid} that hold the marker: what its embedded
     * drivers leave when it is killed (SIGKILL) and cannot delete them. A directory without the marker
     * is left alone. Call it only once that process is gone: a live driver's directory would go too.
     *
     * @return how many directories were deleted
     * @throws IllegalStateException naming the directory when one could not be deleted
     */
    public static int deleteGenerated(long pid) {
        String prefix = GENERATED_PREFIX + pid + "-";
        File[] dirs = new File(baseDir()).listFiles((d, name) -> name.startsWith(prefix));
        int deleted = 0;
        for (File dir : dirs == null ? new File[0] : dirs) {
            if (new File(dir, MARKER).isFile()) {
                // failures ignored here, checked below: a concurrent sweep may be deleting the same files
                IoUtil.delete(dir, true);
                if (dir.exists()) {
                    throw new IllegalStateException("cannot delete aeron dir " + dir + " of process " + pid);
                }
                deleted++;
            }
        }
        return deleted;
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
