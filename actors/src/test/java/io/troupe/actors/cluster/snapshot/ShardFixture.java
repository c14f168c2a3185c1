package io.troupe.actors.cluster.snapshot;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/** Test fixture: host tensors of random floats for snapshot shards, all closed with the fixture. */
final class ShardFixture implements AutoCloseable {
    private final CpuDevice device = new CpuDevice(1);
    private final List<Tensor> tensors = new ArrayList<>();
    private final Random random;

    ShardFixture(long seed) {
        this.random = new Random(seed);
    }

    /** A tensor of {@code n} random floats in [-0.5, 0.5). */
    Tensor tensor(int n) {
        Tensor t = device.allocate(DType.F32, n);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = random.nextFloat() - 0.5f;
        }
        device.copyFromHost(v, t);
        tensors.add(t);
        return t;
    }

    /** Chunks of {@code like}'s sizes, to restore into (random contents, optimizer step 0). */
    List<ShardSnapshots.ChunkState> zerosLike(List<ShardSnapshots.ChunkState> like) {
        List<ShardSnapshots.ChunkState> out = new ArrayList<>();
        for (ShardSnapshots.ChunkState c : like) {
            out.add(new ShardSnapshots.ChunkState(tensor((int) c.params().numel()),
                tensor((int) c.firstMoment().numel()), tensor((int) c.secondMoment().numel()), 0));
        }
        return out;
    }

    /** Asserts that {@code got} holds bitwise {@code want}'s parameters and moments. */
    static void assertSameState(List<ShardSnapshots.ChunkState> want, List<ShardSnapshots.ChunkState> got) {
        for (int c = 0; c < want.size(); c++) {
            assertArrayEquals(want.get(c).params().toFloatArray(), got.get(c).params().toFloatArray());
            assertArrayEquals(want.get(c).firstMoment().toFloatArray(), got.get(c).firstMoment().toFloatArray());
            assertArrayEquals(want.get(c).secondMoment().toFloatArray(), got.get(c).secondMoment().toFloatArray());
        }
    }

    @Override
    public void close() {
        tensors.forEach(Tensor::close);
        device.close();
    }
}
