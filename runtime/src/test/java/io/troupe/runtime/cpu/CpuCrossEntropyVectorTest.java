package io.troupe.runtime.cpu;

import static io.troupe.runtime.cpu.CpuMemory.UNSAFE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The cross-entropy rows on the Vector API bitwise against {@link CpuTokenRows#crossEntropy}, and the staged
 * cross-entropy backward against its element-by-element reference.
 */
class CpuCrossEntropyVectorTest {
    @Test
    @Timeout(30)
    void shouldMatchTheElementwiseBackwardBitwise() {
        Random rnd = new Random(10);
        for (int vocab : new int[] {1, 3, 256, 257, 5000}) {
            int rows = 5;
            long n = (long) rows * vocab;
            try (CpuStorage probs = new CpuStorage(4 * n); CpuStorage targets = new CpuStorage(4L * rows);
                 CpuStorage d1 = new CpuStorage(4 * n); CpuStorage d2 = new CpuStorage(4 * n)) {
                for (long i = 0; i < n; i++) {
                    UNSAFE.putFloat(probs.address() + 4 * i, i % 7 == 0 ? 0f : rnd.nextFloat());
                }
                for (int r = 0; r < rows; r++) {
                    UNSAFE.putInt(targets.address() + 4L * r, rnd.nextInt(vocab));
                }
                float scale = 1f / 3f;
                // rows 1..4 only: the row range must be honoured
                CpuTokenRows.crossEntropyBackwardReference(d1.address(), probs.address(), targets.address(), 1, rows,
                    vocab, scale);
                CpuTokenRows.crossEntropyBackward(d2.address(), probs.address(), targets.address(), 1, rows, vocab,
                    scale);
                for (long i = 0; i < n; i++) {
                    assertEquals(Float.floatToRawIntBits(UNSAFE.getFloat(d1.address() + 4 * i)),
                        Float.floatToRawIntBits(UNSAFE.getFloat(d2.address() + 4 * i)), "vocab=" + vocab + " at " + i);
                }
            }
        }
    }

    @Test
    @Timeout(30)
    void shouldMatchTheScalarRowsBitwise() {
        assumeTrue(CpuAttention.VECTOR_API, "needs --add-modules jdk.incubator.vector");
        Random rnd = new Random(9);
        for (int vocab : new int[] {1, 3, 15, 16, 17, 64, 256, 257, 1000}) {
            int rows = 7;
            long n = (long) rows * vocab;
            try (CpuStorage logits = new CpuStorage(4 * n); CpuStorage targets = new CpuStorage(4L * rows);
                 CpuStorage p1 = new CpuStorage(4 * n); CpuStorage p2 = new CpuStorage(4 * n);
                 CpuStorage l1 = new CpuStorage(4L * rows); CpuStorage l2 = new CpuStorage(4L * rows)) {
                for (long i = 0; i < n; i++) {
                    float x = switch ((int) (i % 9)) {
                        case 0 -> 0f;
                        case 1 -> -0f;
                        case 2 -> -100f;
                        default -> (float) (rnd.nextGaussian() * 5);
                    };
                    UNSAFE.putFloat(logits.address() + 4 * i, x);
                }
                for (int r = 0; r < rows; r++) {
                    UNSAFE.putInt(targets.address() + 4L * r, rnd.nextInt(vocab));
                }
                CpuTokenRows.crossEntropy(logits.address(), targets.address(), p1.address(), l1.address(), 0, rows,
                    vocab);
                CpuCrossEntropyVector.rows(logits.address(), targets.address(), p2.address(), l2.address(), 0, rows,
                    vocab);
                for (long i = 0; i < n; i++) {
                    assertEquals(Float.floatToRawIntBits(UNSAFE.getFloat(p1.address() + 4 * i)),
                        Float.floatToRawIntBits(UNSAFE.getFloat(p2.address() + 4 * i)),
                        "probs vocab=" + vocab + " at " + i);
                }
                for (int r = 0; r < rows; r++) {
                    assertEquals(Float.floatToRawIntBits(UNSAFE.getFloat(l1.address() + 4L * r)),
                        Float.floatToRawIntBits(UNSAFE.getFloat(l2.address() + 4L * r)),
                        "loss vocab=" + vocab + " row " + r);
                }
            }
        }
    }
}
