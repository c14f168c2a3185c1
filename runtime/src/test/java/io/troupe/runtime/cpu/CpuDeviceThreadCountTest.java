package io.troupe.runtime.cpu;

import static io.troupe.runtime.testkit.RandomTensors.ints;
import static io.troupe.runtime.testkit.RandomTensors.uniform;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.troupe.runtime.tensor.Tensor;
import io.troupe.runtime.testkit.RandomTensors;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@link CpuDevice}'s promise that reductions across rows (bias, LayerNorm and embedding gradients,
 * sums of squares) do not depend on the thread count: one and three threads give bitwise-identical
 * results.
 */
@Timeout(30)
class CpuDeviceThreadCountTest {
    private final Random rnd = new Random(31);
    private final CpuDevice one = new CpuDevice(1);
    private final CpuDevice three = new CpuDevice(3);
    private final List<Tensor> tensors = new ArrayList<>();

    @AfterEach
    void close() {
        tensors.forEach(Tensor::close);
        one.close();
        three.close();
    }

    private Tensor on(CpuDevice d, float[] data) {
        Tensor t = RandomTensors.tensor(d, data, data.length);
        tensors.add(t);
        return t;
    }

    private Tensor ids(CpuDevice d, int[] data) {
        Tensor t = RandomTensors.intTensor(d, data, data.length);
        tensors.add(t);
        return t;
    }

    private void assertSame(String what, Tensor a, Tensor b) {
        float[] x = a.toFloatArray();
        float[] y = b.toFloatArray();
        int differing = 0;
        for (int i = 0; i < x.length; i++) {
            if (Float.floatToRawIntBits(x[i]) != Float.floatToRawIntBits(y[i])) {
                differing++;
            }
        }
        System.out.println(what + ": " + differing + " of " + x.length + " elements differ between 1 and 3 threads");
        assertArrayEquals(x, y, 0f, what);
    }

    @Test
    void shouldReduceBitwiseIdenticallyWithOneAndThreeThreads() {
        int rows = 1031;
        int cols = 129;
        int vocab = 11;
        float[] dout = uniform(rnd, rows * cols, -1, 1);
        float[] inp = uniform(rnd, rows * cols, -2, 2);
        float[] w = uniform(rnd, cols, 0.5, 1.5);
        float[] b = uniform(rnd, cols, -1, 1);
        float[] acc = uniform(rnd, rows * cols, -1, 1);
        int[] id = ints(rnd, rows, vocab);
        Tensor[][] results = new Tensor[2][];
        CpuDevice[] devices = {one, three};
        for (int i = 0; i < 2; i++) {
            CpuDevice d = devices[i];
            Tensor dbias = on(d, b.clone());
            d.biasBackward(dbias, on(d, dout), rows, cols);
            Tensor x = on(d, inp);
            Tensor weight = on(d, w);
            Tensor out = on(d, new float[rows * cols]);
            Tensor mean = on(d, new float[rows]);
            Tensor rstd = on(d, new float[rows]);
            d.layerNorm(x, weight, on(d, b), out, mean, rstd, rows, cols, 1e-5f);
            Tensor dinp = on(d, acc.clone());
            Tensor dw = on(d, w.clone());
            Tensor db = on(d, b.clone());
            d.layerNormBackward(dinp, dw, db, on(d, dout), x, weight, mean, rstd, rows, cols);
            Tensor dtable = on(d, uniform(new Random(5), vocab * cols, -1, 1));
            d.embeddingBackward(dtable, on(d, dout), ids(d, id), rows, cols);
            results[i] = new Tensor[] {dbias, out, dinp, dw, db, dtable};
        }
        String[] names = {"biasBackward", "layerNorm", "layerNormBackward dinp", "layerNormBackward dweight",
            "layerNormBackward dbias", "embeddingBackward"};
        for (int j = 0; j < names.length; j++) {
            assertSame(names[j] + " rows=" + rows + " cols=" + cols, results[0][j], results[1][j]);
        }
        float[] big = uniform(rnd, 100_003, -3, 3);
        assertEquals(one.sumOfSquares(on(one, big)), three.sumOfSquares(on(three, big)), 0, "sumOfSquares");
    }
}
