package io.troupe.runtime.transport;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.SplittableRandom;
import org.agrona.IoUtil;
import org.agrona.UnsafeApi;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The shared-memory ring's bookkeeping against a plain model, and its file handling. */
class IpcRingTest {
    private static final int STREAM = 1001;
    private static final int SESSION = 77;
    private Path dir;

    @BeforeEach
    void setUp() throws IOException {
        dir = Files.createTempDirectory("troupe-ring-test");
    }

    @AfterEach
    void tearDown() {
        IoUtil.delete(dir.toFile(), true);
    }

    private record Sent(long start, int offset, int length, long seed) {
    }

    @Test
    @Timeout(30)
    void shouldKeepChunksContiguousAndNeverOverwriteBytesTheReceiverHolds() {
        int capacity = 64 * 1024;
        try (IpcRing tx = IpcRing.create(dir.toString(), STREAM, SESSION, capacity);
             IpcRing rx = IpcRing.open(dir.toString(), STREAM, SESSION)) {
            assertNotNull(rx, "the receiver finds the ring by stream and session");
            assertEquals(capacity, rx.capacity());
            SplittableRandom r = new SplittableRandom(42);
            ArrayDeque<Sent> inFlight = new ArrayDeque<>();
            long modelWritten = 0;
            long modelConsumed = 0;
            int refused = 0;
            for (int op = 0; op < 20_000; op++) {
                if (r.nextInt(3) > 0) {
                    int length = r.nextInt(4) == 0 ? capacity : 1 + r.nextInt(capacity / 3);
                    int off = (int) (modelWritten % capacity);
                    long expectStart = off + length > capacity ? modelWritten + capacity - off : modelWritten;
                    boolean fits = modelConsumed >= Math.min(expectStart + length - capacity, modelWritten);
                    long start = tx.claim(length);
                    if (!fits) {
                        assertEquals(-1, start, "claim must refuse bytes the receiver still holds");
                        refused++;
                        continue;
                    }
                    assertEquals(expectStart, start);
                    assertTrue(tx.offsetOf(start) + length <= capacity, "a chunk never wraps");
                    long seed = r.nextLong();
                    fill(tx.address(start), length, seed);
                    tx.commit(start, length);
                    modelWritten = start + length;
                    inFlight.add(new Sent(start, tx.offsetOf(start), length, seed));
                } else if (!inFlight.isEmpty()) {
                    Sent s = inFlight.poll();
                    assertTrue(rx.holds(s.offset, s.length));
                    assertEquals(s.start, rx.startOf(s.offset), "the receiver recovers the position from the offset");
                    check(rx.address(s.offset), s.length, s.seed);
                    rx.consumedTo(s.start + s.length);
                    modelConsumed = s.start + s.length;
                }
            }
            assertTrue(refused > 100, "the test filled the ring: refused " + refused);
        }
    }

    @Test
    @Timeout(30)
    void shouldResynchronizeAfterChunksTheReceiverSkipped() {
        int capacity = 8192;
        try (IpcRing tx = IpcRing.create(dir.toString(), STREAM, SESSION, capacity);
             IpcRing rx = IpcRing.open(dir.toString(), STREAM, SESSION)) {
            long a = tx.claim(3000);
            tx.commit(a, 3000);
            long b = tx.claim(3000);
            tx.commit(b, 3000);
            assertEquals(-1, tx.claim(3000), "c needs a's bytes back");
            assertEquals(a, rx.startOf(tx.offsetOf(a)));
            rx.consumedTo(a + 3000);
            long c = tx.claim(3000); // skips the last 2192 bytes
            assertEquals(8192, c);
            tx.commit(c, 3000);
            // the receiver dropped b's frame (e.g. a stale epoch): c is still found
            assertEquals(c, rx.startOf(tx.offsetOf(c)));
            rx.consumedTo(c + 3000);
            assertEquals(c + 3000, rx.consumed());
            assertTrue(tx.claim(capacity) >= 0, "all of the ring is free again");
        }
    }

    @Test
    void shouldRefuseChunksOutsideTheDataArea() {
        try (IpcRing tx = IpcRing.create(dir.toString(), STREAM, SESSION, 4096)) {
            assertTrue(tx.holds(0, 4096));
            assertTrue(tx.holds(4095, 1));
            assertFalse(tx.holds(-1, 10));
            assertFalse(tx.holds(4000, 97));
            assertFalse(tx.holds(0, 0));
            assertFalse(tx.holds(Integer.MAX_VALUE, Integer.MAX_VALUE));
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> IpcRing.create(dir.toString(), STREAM, SESSION, 1000));
        assertTrue(e.getMessage().contains("capacity=1000"), e.getMessage());
    }

    @Test
    @Timeout(30)
    void shouldSweepOnlyOldRingsWhosePublicationIsGone() {
        long now = System.currentTimeMillis();
        org.agrona.collections.LongHashSet live = new org.agrona.collections.LongHashSet();
        live.add(IpcRing.pair(STREAM, SESSION));
        File liveOld = left(STREAM, SESSION);
        File goneOld = left(STREAM, SESSION + 1);
        File goneYoung = left(STREAM, -5);
        assertTrue(liveOld.setLastModified(now - 60_000) && goneOld.setLastModified(now - 60_000));
        assertEquals(-1, IpcRing.pairOf("troupe-ring-x"), "not a ring's name");
        assertEquals(IpcRing.pair(STREAM, -5), IpcRing.pairOf(IpcRing.fileName(1, STREAM, -5)));
        assertEquals(1, IpcRing.sweepOrphans(dir.toFile(), live::contains, now - IpcRing.ORPHAN_MIN_AGE_MS));
        assertTrue(liveOld.exists(), "a ring whose publication the driver holds stays, however old");
        assertFalse(goneOld.exists(), "an old ring without a publication is an orphan");
        assertTrue(goneYoung.exists(), "a young ring may be waiting for its publication");
    }

    /** A ring file as a killed creator (another process) leaves it: made, copied under its name, closed. */
    private File left(int stream, int session) {
        File copy = dir.resolve(IpcRing.fileName(999_999_999L, stream, session)).toFile();
        try (IpcRing ring = IpcRing.create(dir.toString(), stream, session, 4096)) {
            Files.copy(ring.file().toPath(), copy.toPath());
        } catch (IOException e) {
            throw new AssertionError(e);
        }
        return copy;
    }

    @Test
    @Timeout(30)
    void shouldOpenTheNewestRingOfAPublicationAndRejectForeignFiles() throws Exception {
        File stale = dir.resolve(IpcRing.fileName(1, STREAM, SESSION)).toFile();
        try (IpcRing old = IpcRing.create(dir.toString(), STREAM, SESSION, 4096)) {
            Files.copy(old.file().toPath(), stale.toPath());
        }
        assertTrue(stale.setLastModified(System.currentTimeMillis() - 60_000));
        try (IpcRing fresh = IpcRing.create(dir.toString(), STREAM, SESSION, 8192);
             IpcRing rx = IpcRing.open(dir.toString(), STREAM, SESSION)) {
            assertEquals(8192, rx.capacity(), "the live publication's ring is the newest of its name");
        }
        File garbage = dir.resolve(IpcRing.fileName(ProcessHandle.current().pid(), STREAM, SESSION + 1)).toFile();
        Files.write(garbage.toPath(), new byte[16384]);
        assertNull(IpcRing.open(dir.toString(), STREAM, SESSION + 1), "a file without the ring's magic is refused");
        assertNull(IpcRing.open(dir.toString(), STREAM, SESSION + 2), "no file, no ring");
        assertFalse(dir.resolve(IpcRing.fileName(ProcessHandle.current().pid(), STREAM, SESSION)).toFile().exists(),
            "the creator deletes its ring on close");
    }

    private static void fill(long address, int length, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        for (int i = 0; i < length; i++) {
            UnsafeApi.putByte(address + i, (byte) r.nextInt());
        }
    }

    private static void check(long address, int length, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        for (int i = 0; i < length; i++) {
            if (UnsafeApi.getByte(address + i) != (byte) r.nextInt()) {
                fail("chunk overwritten at byte " + i + " of " + length);
            }
        }
    }
}
