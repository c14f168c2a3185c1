package io.troupe.actors.cluster.snapshot;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** The pieces a snapshot travels in: their size follows the receive budget, their key round-trips. */
class SnapshotPiecesTest {
    @Test
    void shouldSizePiecesToAQuarterOfTheBudgetAtMost64MiB() {
        assertEquals(26, SnapshotPieces.pieceShift(256L << 20), "64 MiB under the default 256 MiB budget");
        assertEquals(26, SnapshotPieces.pieceShift(1L << 40));
        assertEquals(15, SnapshotPieces.pieceShift(128 * 1024));
        assertEquals(16, SnapshotPieces.pieceShift(300 * 1024), "a power of two under a quarter");
        assertTrue(1L << SnapshotPieces.pieceShift(300 * 1024) <= 300 * 1024 / 4);
        assertEquals(12, SnapshotPieces.pieceShift(1));
    }

    @Test
    void shouldPackRankShiftCountAndIndexInTheKey() {
        long key = SnapshotPieces.pieceKey(65_535, 26, (1L << 21) - 1, (1L << 21) - 2);
        assertEquals(65_535, key >>> 48 & 0xffff);
        assertEquals(26, key >>> 42 & 0x3f);
        assertEquals((1L << 21) - 1, key >>> 21 & 0x1f_ffffL);
        assertEquals((1L << 21) - 2, key & 0x1f_ffffL);
        assertThrows(IllegalArgumentException.class, () -> SnapshotPieces.pieceKey(1 << 16, 26, 1, 0));
        assertThrows(IllegalArgumentException.class, () -> SnapshotPieces.pieceKey(0, 26, 1L << 21, 0));
        assertThrows(IllegalArgumentException.class, () -> SnapshotPieces.pieceKey(0, 26, 2, 2));
    }
}
