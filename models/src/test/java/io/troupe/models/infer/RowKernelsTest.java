package io.troupe.models.infer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The softmax's float exponential against {@link Math#exp}. */
@Timeout(30)
class RowKernelsTest {
    /** Fresh random inputs over the whole finite range, denser near 0 where softmax spends them: within 2 ulp. */
    @Test
    void shouldStayWithinTwoUlpOfMathExp() {
        SplittableRandom rnd = new SplittableRandom(3);
        double worstUlps = 0;
        float worstX = 0;
        for (int i = 0; i < 2_000_000; i++) {
            float x = i % 2 == 0 ? (float) (rnd.nextDouble() * 175 - 87) : (float) (rnd.nextDouble() * -20);
            float fast = RowKernels.exp(x);
            float exact = (float) Math.exp(x);
            double ulps = Math.abs(fast - exact) / Math.ulp(exact);
            if (ulps > worstUlps) {
                worstUlps = ulps;
                worstX = x;
            }
        }
        System.out.printf("exp: max error %.2f ulp (at x = %s)%n", worstUlps, worstX);
        assertTrue(worstUlps <= 2, "max error " + worstUlps + " ulp at x=" + worstX);
        assertEquals(1f, RowKernels.exp(0f));
        assertEquals(0f, RowKernels.exp(-100f));
        assertEquals(0f, RowKernels.exp(Float.NEGATIVE_INFINITY));
        assertEquals(Float.POSITIVE_INFINITY, RowKernels.exp(89f));
        assertTrue(Float.isNaN(RowKernels.exp(Float.NaN)));
    }
}
