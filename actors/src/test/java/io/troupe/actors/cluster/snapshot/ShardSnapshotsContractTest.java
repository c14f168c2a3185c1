package io.troupe.actors.cluster.snapshot;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.troupe.runtime.device.Device;
import io.troupe.runtime.device.DeviceKind;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;
import java.lang.reflect.Proxy;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A shard's tensors on one device go into a real {@link SnapshotStore} and come back bit for bit, in one copy each
 * way: the chunks' parameters are views at odd offsets into a flat buffer (as a model's are), the moments of one
 * chunk a 2-D tensor and of another a smaller ZeRO-like segment, and the slot is made of 4 KiB segments, so
 * tensors straddle the seams. The host device the slot's memory is reported on counts every call made to it:
 * nothing but its kind and name may be asked (a host copy would be allocated on it). The slot's bytes must be
 * those a snapshot of the same values in host tensors holds (CRC included).
 */
abstract class ShardSnapshotsContractTest {
    private static final int JOB = 0x5a17;
    /** 4 KiB segments: every tensor below crosses at least one seam. */
    private static final int SEGMENT_SHIFT = 12;

    private final List<Tensor> owned = new ArrayList<>();
    private final Random random = new Random(20240611L);
    private final AtomicInteger hostCalls = new AtomicInteger();
    private Device device;
    private Device host;
    private ShardFixture reference;

    /** The device under test, or null when it cannot be opened here (the test skips with {@link #skipReason}). */
    abstract Device openDevice();

    abstract String skipReason();

    @BeforeEach
    void open() {
        device = openDevice();
        assumeTrue(device != null, this::skipReason);
        reference = new ShardFixture(1);
        host = (Device) Proxy.newProxyInstance(Device.class.getClassLoader(), new Class<?>[] {Device.class},
            (proxy, method, args) -> switch (method.getName()) {
                case "kind" -> DeviceKind.CPU;
                case "name" -> "slot memory";
                case "toString" -> "slot memory";
                default -> {
                    hostCalls.incrementAndGet();
                    throw new AssertionError("the slot's host device was asked " + method.getName());
                }
            });
    }

    @AfterEach
    void close() {
        owned.forEach(Tensor::close);
        if (reference != null) {
            reference.close();
        }
        if (device != null) {
            device.close();
        }
    }

    /** A device buffer of {@code n} floats holding {@code values} (or, when null, values that must be overwritten). */
    private Tensor buffer(int n, float[] values) {
        Tensor t = device.allocate(DType.F32, n);
        owned.add(t);
        float[] v = values;
        if (v == null) {
            v = new float[n];
            Arrays.fill(v, -7.25f);
        }
        device.copyFromHost(v, t);
        return t;
    }

    private float[] randomFloats(int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            // Any finite bit pattern: a copy that converts or rounds anything shows.
            int bits;
            do {
                bits = random.nextInt();
            } while (Float.isNaN(Float.intBitsToFloat(bits)) || Float.isInfinite(Float.intBitsToFloat(bits)));
            v[i] = Float.intBitsToFloat(bits);
        }
        return v;
    }

    /** The values of each tensor of a shard, in snapshot order (params, m, v per chunk). */
    private record Values(float[][] of) {
    }

    /**
     * The shard on the device: chunk 0's parameters a view 3 floats into a flat buffer (as the model's are), its
     * moments one 2-D tensor each; chunk 1's parameters a view further into the same buffer and its moments a
     * ZeRO-like segment, each a view 5 floats into a buffer of its own. {@code values} fills them.
     */
    private List<ShardSnapshots.ChunkState> shardOnDevice(Values values, long optimizerStep) {
        float[][] v = values.of();
        int p0 = v[0].length;
        int p1 = v[3].length;
        float[] flat = new float[3 + p0 + 9 + p1 + 2];
        Arrays.fill(flat, 11.5f);
        System.arraycopy(v[0], 0, flat, 3, p0);
        System.arraycopy(v[3], 0, flat, 3 + p0 + 9, p1);
        Tensor params = buffer(flat.length, flat);
        Tensor m0 = buffer(v[1].length, v[1]).reshape(25, v[1].length / 25);
        Tensor v0 = buffer(v[2].length, v[2]).reshape(25, v[2].length / 25);
        return List.of(
            new ShardSnapshots.ChunkState(params.view(3, p0), m0, v0, optimizerStep, host),
            new ShardSnapshots.ChunkState(params.view(3 + p0 + 9, p1), segment(v[4]), segment(v[5]), optimizerStep,
                host));
    }

    /** A view 5 floats into a buffer of its own, holding {@code v}, the buffer's other floats 13.0. */
    private Tensor segment(float[] v) {
        float[] b = new float[5 + v.length + 4];
        Arrays.fill(b, 13f);
        System.arraycopy(v, 0, b, 5, v.length);
        return buffer(b.length, b).view(5, v.length);
    }

    /** Tensors of {@code like}'s layout on the device, views at the same offsets, every float -7.25 to begin with. */
    private List<ShardSnapshots.ChunkState> blankLike(Values like) {
        float[][] v = like.of();
        float[][] blank = new float[v.length][];
        for (int i = 0; i < v.length; i++) {
            blank[i] = new float[v[i].length];
            Arrays.fill(blank[i], -7.25f);
        }
        return shardOnDevice(new Values(blank), 0);
    }

    private static float[][] valuesOf(List<ShardSnapshots.ChunkState> shard) {
        List<float[]> out = new ArrayList<>();
        for (ShardSnapshots.ChunkState c : shard) {
            out.add(c.params().toFloatArray());
            out.add(c.firstMoment().toFloatArray());
            out.add(c.secondMoment().toFloatArray());
        }
        return out.toArray(new float[0][]);
    }

    private Values randomValues() {
        // 1500 and 1175 parameters, 2500-float moments (25 x 100) and 601-float segments: all cross 4 KiB seams.
        return new Values(new float[][] {randomFloats(1500), randomFloats(2500), randomFloats(2500), randomFloats(1175),
            randomFloats(601), randomFloats(601)});
    }

    @Test
    @Timeout(120)
    void shouldRestoreTheShardBitForBitStraightThroughTheSlot() {
        Values values = randomValues();
        List<ShardSnapshots.ChunkState> shard = shardOnDevice(values, 41);
        SnapshotStore store = new SnapshotStore("device shard", SEGMENT_SHIFT);
        SnapshotBuffer b = ShardSnapshots.capture(store, JOB, 3, 2, 40, shard, 0);
        assertTrue(b.capacityBytes() > 8 * 4096, "several segments: " + b.capacityBytes());

        // The slot holds what a snapshot of the same values in host tensors holds, byte for byte.
        List<ShardSnapshots.ChunkState> onHost = new ArrayList<>();
        float[][] v = values.of();
        for (int c = 0; c < 2; c++) {
            onHost.add(new ShardSnapshots.ChunkState(hostTensor(v[3 * c]), hostTensor(v[3 * c + 1]),
                hostTensor(v[3 * c + 2]), 41));
        }
        SnapshotStore hostStore = new SnapshotStore("host shard", SEGMENT_SHIFT);
        SnapshotBuffer expected = ShardSnapshots.capture(hostStore, JOB, 3, 2, 40, onHost, 0);
        assertEquals(expected.lengthBytes(), b.lengthBytes());
        for (long at = 0; at < b.lengthBytes(); at++) {
            if (b.getByte(at) != expected.getByte(at)) {
                throw new AssertionError("slot byte " + at + " differs from the host snapshot's: "
                    + b.getByte(at) + " vs " + expected.getByte(at));
            }
        }

        List<ShardSnapshots.ChunkState> back = blankLike(values);
        SnapshotBuffer found = store.find(JOB, 3, 40);
        try {
            assertNull(found.check(JOB, 3, 40));
            assertArrayEquals(new long[] {41, 41}, ShardSnapshots.restore(found, back));
        } finally {
            store.unpin(found);
        }
        float[][] got = valuesOf(back);
        for (int i = 0; i < v.length; i++) {
            assertArrayEquals(v[i], got[i], "tensor " + i + " restored bit for bit");
        }
        assertNeighboursUntouched(back);
        assertEquals(0, hostCalls.get(), "the slot's host device was asked to do something (a host copy?)");
        System.out.println(device.name() + ": " + b.lengthBytes() + " snapshot bytes, " + v.length
            + " tensors restored bit for bit through " + b.capacityBytes() / 4096 + " segments");
    }

    private Tensor hostTensor(float[] v) {
        Tensor t = reference.tensor(v.length);
        t.device().copyFromHost(v, t);
        return t;
    }

    /** The floats around each restored view kept their fill: the restore wrote exactly the views' windows. */
    private static void assertNeighboursUntouched(List<ShardSnapshots.ChunkState> back) {
        Tensor p0 = back.get(0).params();
        Tensor p1 = back.get(1).params();
        float[] flat = whole(p0);
        for (int i = 0; i < flat.length; i++) {
            boolean inside = (i >= p0.offsetElements() && i < p0.offsetElements() + p0.numel())
                || (i >= p1.offsetElements() && i < p1.offsetElements() + p1.numel());
            if (!inside) {
                assertEquals(11.5f, flat[i], "flat parameter buffer float " + i + " outside the views");
            }
        }
        for (Tensor seg : new Tensor[] {back.get(1).firstMoment(), back.get(1).secondMoment()}) {
            float[] all = whole(seg);
            for (int i = 0; i < all.length; i++) {
                if (i < seg.offsetElements() || i >= seg.offsetElements() + seg.numel()) {
                    assertEquals(13f, all[i], "segment buffer float " + i + " outside the view");
                }
            }
        }
    }

    /** Every float of the storage {@code t} is a view into (a window from its start to the storage's end). */
    private static float[] whole(Tensor t) {
        int n = (int) (t.storage().lengthBytes() / Float.BYTES);
        return new Tensor(t.device(), t.storage(), DType.F32, 0, new int[] {n}, false).toFloatArray();
    }

    /**
     * A tensor off the CPU needs a CPU device for the slot's memory; a snapshot that does not fit its slot is refused.
     */
    @Test
    @Timeout(60)
    void shouldRefuseMisfits() {
        Tensor t = buffer(64, randomFloats(64));
        if (device.kind() != DeviceKind.CPU) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new ShardSnapshots.ChunkState(t, t, t, 1));
            assertTrue(e.getMessage().contains("needs a CPU device"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> new ShardSnapshots.ChunkState(t, t, t, 1, device));
        }
        SnapshotStore store = new SnapshotStore("misfits", SEGMENT_SHIFT);
        ShardSnapshots.capture(store, JOB, 0, 1, 1, List.of(new ShardSnapshots.ChunkState(t, t, t, 1, host)), 0);
        Tensor bigger = buffer(65, null);
        SnapshotBuffer found = store.find(JOB, 0, 1);
        try {
            SnapshotException e = assertThrows(SnapshotException.class,
                () -> ShardSnapshots.restore(found, List.of(new ShardSnapshots.ChunkState(bigger, t, t, 0, host))));
            assertTrue(e.getMessage().contains("65"), e.getMessage());
            // Past the slot's end: the bounds check refuses before any copy.
            assertThrows(IndexOutOfBoundsException.class, () -> found.upload(found.capacityBytes() - 128, t, host));
            assertThrows(IndexOutOfBoundsException.class, () -> found.download(found.capacityBytes() - 128, t, host));
        } finally {
            store.unpin(found);
        }
        assertEquals(0, hostCalls.get());
    }
}
