package io.troupe.runtime.transport;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.runtime.testkit.LoopbackDriver;
import java.io.File;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** Driver lifecycle: stale directories, live directories, cleanup, several workers on one driver. */
class TransportNodeTest {
    @Test
    @Timeout(30)
    void shouldReplaceStaleDirectoryOnStartAndDeleteItOnClose() throws Exception {
        File dir = new File("/dev/shm/troupe-test-stale-" + ProcessHandle.current().pid());
        assertTrue(dir.mkdirs() || dir.isDirectory());
        Files.writeString(new File(dir, "cnc.dat").toPath(), "left by a crashed driver");
        Files.writeString(new File(dir, DriverDirectory.MARKER).toPath(), "created by a Troupe media driver");
        List<Throwable> errors = new ArrayList<>();
        try (TransportNode node = TransportNode.launch(LoopbackDriver.testSettings().withAeronDir(dir.getPath()),
            errors::add)) {
            assertTrue(node.embedsDriver());
            assertEquals(dir.getPath(), node.aeronDir());
            // a second driver on the same live directory is refused with the directory in the message
            IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> TransportNode.launch(LoopbackDriver.testSettings().withAeronDir(dir.getPath()), errors::add));
            assertTrue(e.getMessage().contains(dir.getPath()), e.getMessage());
        } finally {
            assertFalse(dir.exists(), "aeron dir deleted on close");
        }
        assertTrue(errors.isEmpty(), errors.toString());
    }

    @Test
    @Timeout(30)
    void shouldRefuseToLaunchADriverInADirectoryTroupeDidNotCreate() throws Exception {
        File dir = Files.createTempDirectory("troupe-foreign").toFile();
        File precious = new File(dir, "precious.txt");
        Files.writeString(precious.toPath(), "someone else's");
        try {
            for (Runnable launch : List.<Runnable>of(
                () -> TransportNode.launch(LoopbackDriver.testSettings().withAeronDir(dir.getPath()), t -> { }),
                () -> TransportNode.launchDriver(LoopbackDriver.testSettings(), dir.getPath(), t -> { }))) {
                IllegalStateException e = assertThrows(IllegalStateException.class, launch::run);
                assertTrue(e.getMessage().contains(dir.getPath()) && e.getMessage().contains(DriverDirectory.MARKER),
                    e.getMessage());
                assertTrue(precious.isFile(), "the foreign directory must be untouched");
            }
        } finally {
            Files.delete(precious.toPath());
            Files.delete(dir.toPath());
        }
    }

    /**
     * In a base directory of its own: in the shared /dev/shm any other process's launch sweeps the dead
     * process's directories too, so they could be gone before this sweep counts them.
     */
    @Test
    @Timeout(30)
    void shouldSweepGeneratedDirectoriesOfDeadProcesses(@TempDir File base) throws Exception {
        Process gone = new ProcessBuilder("true").start();
        gone.waitFor();
        File stale = new File(base, "troupe-" + gone.pid() + "-1-dead");
        File mine = new File(base, "troupe-" + ProcessHandle.current().pid() + "-999-mine");
        // the process died as its driver started: a CnC file created, never initialised (Aeron throws on it)
        File uninitialised = new File(base, "troupe-" + gone.pid() + "-2-uninitialised");
        assertTrue(stale.mkdirs() && mine.mkdirs() && uninitialised.mkdirs());
        Files.writeString(new File(stale, "cnc.dat").toPath(), "stale");
        File cnc = new File(uninitialised, "cnc.dat");
        Files.write(cnc.toPath(), new byte[8192]);
        assertTrue(cnc.setLastModified(System.currentTimeMillis() - 60_000));
        assertEquals(2, TransportNode.sweepStaleDirs(base.getPath()));
        assertFalse(stale.exists(), "dead process's directory swept");
        assertFalse(uninitialised.exists(), "dead process's uninitialised driver directory swept");
        assertTrue(mine.exists(), "a live process's directory kept");
    }

    @Test
    @Timeout(30)
    void shouldShareOneDriverBetweenWorkersAndAnExternalClient() {
        try (LoopbackDriver driver = LoopbackDriver.start()) {
            WorkerTransport a = driver.openWorker("a", 0, 0, slot -> { });
            WorkerTransport b = driver.openWorker("b", 1, 0, slot -> { });
            assertEquals(a.endpoint().nodeId(), b.endpoint().nodeId());
            assertNotEquals(a.endpoint().streamId(), b.endpoint().streamId());
            assertTrue(a.endpoint().port() > 0);
            // a second node in the same JVM attached to the same (now external) driver sees the same node id
            try (TransportNode external = TransportNode.launch(
                LoopbackDriver.testSettings().withExternalDriver(driver.node().aeronDir()), driver.errors()::add)) {
                assertFalse(external.embedsDriver());
                assertEquals(driver.node().nodeId(), external.nodeId());
                // workers of nodes sharing one driver never share a stream (an IPC subscription gets its whole stream)
                try (TransportNode external2 = TransportNode.launch(
                    LoopbackDriver.testSettings().withExternalDriver(driver.node().aeronDir()), driver.errors()::add);
                     WorkerTransport c = external.openWorker("c", 2, 0, slot -> { }, driver.errors()::add);
                     WorkerTransport d = external2.openWorker("d", 3, 0, slot -> { }, driver.errors()::add)) {
                    java.util.Set<Integer> streams = java.util.Set.of(a.endpoint().streamId(), b.endpoint().streamId(),
                        c.endpoint().streamId(), d.endpoint().streamId());
                    assertEquals(4, streams.size(), "distinct streams: " + streams);
                }
            }
        }
    }
}
