package io.troupe.runtime.testkit;

import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.tensor.Tensor;
import java.util.Random;

/**
 * Whether this machine's BLAS gives a weight gradient {@code dW = dY^T X} formed as blocks of its rows (each block
 * its own gemm, as ZeRO-2 forms a weight that two bucket windows share) the bits of the whole product's rows. That
 * is the BLAS's choice, not Troupe's: OpenBLAS's AVX-512 kernels do for the shapes probed here, its AVX2 kernels on
 * an AMD EPYC (Zen 3) do not (a block's rows are summed in another order than the whole's, off in the last bits).
 * Tests of a bitwise claim that rests on it assert it where this holds and a tolerance, saying so, where not.
 */
public final class BlasRowBlocks {
    /** (tokens, in, out) and blocks of rows of the product: small gemms, and a large one in blocks of 16 rows on. */
    private static final int[][] SHAPES = {{64, 48, 40}, {1024, 256, 96}};
    private static final int[][][] BLOCKS = {{{0, 1}, {1, 4}, {4, 23}, {23, 40}}, {{0, 16}, {16, 40}, {40, 96}}};
    private static Boolean bitwise;

    private BlasRowBlocks() {
    }

    /** Whether row blocks of a weight-gradient product come out bitwise the whole product's rows (1 and 2 threads). */
    public static synchronized boolean bitwise() {
        if (bitwise == null) {
            bitwise = probe(1) && probe(2);
            if (!bitwise) {
                System.out.println("this machine's BLAS forms row blocks of a product with other last bits than the"
                    + " whole product: bitwise claims that rest on them are held to a tolerance here");
            }
        }
        return bitwise;
    }

    private static boolean probe(int threads) {
        Random rnd = new Random(29);
        try (CpuDevice dev = new CpuDevice(threads)) {
            for (int s = 0; s < SHAPES.length; s++) {
                int tokens = SHAPES[s][0];
                int in = SHAPES[s][1];
                int out = SHAPES[s][2];
                try (Tensor dy = RandomTensors.tensor(dev, RandomTensors.normal(rnd, tokens * out, 0, 1), tokens, out);
                     Tensor x = RandomTensors.tensor(dev, RandomTensors.normal(rnd, tokens * in, 0, 1), tokens, in);
                     Tensor whole = dev.allocate(out, in)) {
                    dev.fill(whole, 0f);
                    dev.gemm(true, false, out, in, tokens, 1f, dy, out, x, in, 1f, whole, in);
                    float[] w = whole.toFloatArray();
                    for (int[] b : BLOCKS[s]) {
                        int n = b[1] - b[0];
                        try (Tensor part = dev.allocate(n, in)) {
                            dev.fill(part, 0f);
                            dev.gemm(true, false, n, in, tokens, 1f, dy.view(b[0], (int) (dy.numel() - b[0])), out, x,
                                in, 1f, part, in);
                            float[] p = part.toFloatArray();
                            for (int i = 0; i < p.length; i++) {
                                if (Float.floatToRawIntBits(p[i]) != Float.floatToRawIntBits(w[b[0] * in + i])) {
                                    return false;
                                }
                            }
                        }
                    }
                }
            }
        }
        return true;
    }
}
