package io.troupe.models.infer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(30)
class KeyOrderTest {
    /** Every channel gets its own place in key order (a permutation), for widths with and without a tail. */
    @Test
    void shouldPermuteTheChannels() {
        for (int[] shape : new int[][] {{4, 32}, {8, 32}, {3, 10}, {4, 12}, {2, 3}}) {
            int[] index = KeyOrder.index(shape[0], shape[1]);
            boolean[] seen = new boolean[index.length];
            for (int i : index) {
                assertTrue(i >= 0 && i < index.length && !seen[i], "index " + i + " for shape " + shape[0] + "x"
                    + shape[1]);
                seen[i] = true;
            }
        }
    }

    /** A head's sum over products in key order is bit for bit {@link RowKernels#sum} over them in channel order. */
    @Test
    void shouldSumAHeadInRowKernelsOrder() {
        Random rnd = new Random(3);
        for (int[] shape : new int[][] {{4, 32}, {8, 32}, {3, 10}, {4, 12}, {2, 3}}) {
            int nh = shape[0];
            int hd = shape[1];
            int[] index = KeyOrder.index(nh, hd);
            float[] prod = new float[nh * hd];
            float[] ordered = new float[nh * hd];
            for (int trial = 0; trial < 50; trial++) {
                for (int ch = 0; ch < prod.length; ch++) {
                    prod[ch] = (float) (rnd.nextGaussian() * Math.pow(10, rnd.nextInt(7) - 3));
                    ordered[index[ch]] = prod[ch];
                }
                for (int h = 0; h < nh; h++) {
                    assertEquals(Float.floatToIntBits(RowKernels.sum(prod, h * hd, hd)),
                        Float.floatToIntBits(KeyOrder.headSum(ordered, h, nh, hd)), "head " + h + " of " + nh + "x"
                            + hd);
                }
            }
        }
    }
}
