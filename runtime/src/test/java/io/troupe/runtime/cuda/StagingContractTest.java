package io.troupe.runtime.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.troupe.runtime.device.Device;
import io.troupe.runtime.device.DeviceKind;
import io.troupe.runtime.device.StagedInput;
import io.troupe.runtime.device.StagedOutput;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.Timeout;

/**
 * The data-plane staging contract ({@link StagedInput}, {@link StagedOutput}) on a device under test,
 * driven the way a pipeline stage drives it: the network writes the host tensor of an input, the stage
 * uploads, acquires, computes, releases, downloads its output and sends the host copy once it is done.
 * Outputs are poisoned first; expected values are exact (small integers), so any byte that did not
 * travel, or travelled out of order, fails.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@Timeout(120)
abstract class StagingContractTest {
    private Device dev;
    private final List<AutoCloseable> opened = new ArrayList<>();

    /** The device under test, or null when this machine has none (tests then skip with {@link #skipReason()}). */
    abstract Device openDevice();

    String skipReason() {
        return "device under test unavailable";
    }

    /** Side of the square matrix the ordering test reads while the next upload waits (bigger on a GPU). */
    abstract int orderingSize();

    @BeforeAll
    void open() {
        dev = openDevice();
    }

    @AfterAll
    void closeDevice() {
        if (dev != null) {
            dev.close();
        }
    }

    @BeforeEach
    void requireDevice() {
        assumeTrue(dev != null, skipReason());
    }

    @AfterEach
    void closeOpened() throws Exception {
        if (dev == null) {
            return;
        }
        dev.synchronize();
        for (int i = opened.size() - 1; i >= 0; i--) {
            opened.get(i).close();
        }
        opened.clear();
    }

    Device device() {
        return dev;
    }

    <T extends AutoCloseable> T track(T t) {
        opened.add(t);
        return t;
    }

    static float[] pattern(int n, int seed) {
        Random r = new Random(seed);
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = r.nextInt(64) - 32;   // small integers: every sum below is exact
        }
        return a;
    }

    @Test
    void shouldCarryMicroBatchesThroughUploadComputeAndDownload() {
        int mbs = 4;
        int[] shape = {2, 16, 24};
        int n = 2 * 16 * 24;
        StagedInput[] in = new StagedInput[mbs];
        StagedOutput[] out = new StagedOutput[mbs];
        float[][] sent = new float[mbs][];
        Tensor work = track(dev.allocate(shape));   // one activation buffer, overwritten by every micro-batch
        for (int mb = 0; mb < mbs; mb++) {
            in[mb] = track(dev.openStagedInput(DType.F32, shape));
            out[mb] = track(dev.openStagedOutput(DType.F32, shape));
            Tensor host = in[mb].host();
            assertEquals(DeviceKind.CPU, host.device().kind(), "the network needs a host tensor");
            assertArrayEquals(shape, host.shape());
            // The network writes through the raw address, as a receive slot's copy does.
            UnsafeBuffer wire = new UnsafeBuffer(host.address(), (int) host.lengthBytes());
            float[] p = pattern(n, mb);
            for (int i = 0; i < n; i++) {
                wire.putFloat(4 * i, p[i], ByteOrder.LITTLE_ENDIAN);
            }
            in[mb].upload();   // all uploads queued before any compute: copies overlap what follows
        }
        List<Integer> pending = new ArrayList<>();
        for (int mb = 0; mb < mbs; mb++) {
            dev.fill(work, Float.NaN);
            Tensor x = in[mb].acquire();
            dev.copy(x, work);
            dev.scale(work, 2f);
            dev.axpy(1f, x, work);   // work = 3x
            in[mb].release();
            out[mb].download(work);
            if (out[mb].isDone()) {
                sent[mb] = out[mb].host().toFloatArray();   // as the stage sends at once when it can
            } else {
                pending.add(mb);
            }
        }
        for (int mb : pending) {
            out[mb].await();
            assertTrue(out[mb].isDone());
            sent[mb] = out[mb].host().toFloatArray();
        }
        System.out.println("staging on " + dev.name() + ": " + (mbs - pending.size()) + " outputs done at once, "
            + pending.size() + " awaited");
        for (int mb = 0; mb < mbs; mb++) {
            float[] p = pattern(n, mb);
            for (int i = 0; i < n; i++) {
                assertEquals(3 * p[i], sent[mb][i], "micro-batch " + mb + " element " + i);
            }
        }
    }

    @Test
    void shouldRefuseCallsOutOfOrderAndMisfitTensors() {
        StagedInput in = track(dev.openStagedInput(DType.F32, 8));
        assertThrows(IllegalStateException.class, in::acquire, "acquire before upload");
        assertThrows(IllegalStateException.class, in::release, "release before acquire");
        in.upload();
        IllegalStateException twice = assertThrows(IllegalStateException.class, in::upload);
        assertTrue(twice.getMessage().contains("UPLOADED"), twice.getMessage());
        in.acquire();
        assertThrows(IllegalStateException.class, in::acquire, "acquire twice");
        in.release();
        in.upload();   // the next use may begin
        in.acquire();
        in.release();

        StagedOutput out = track(dev.openStagedOutput(DType.F32, 2, 4));
        assertThrows(IllegalStateException.class, out::host, "host() before any download");
        Tensor wrong = track(dev.allocate(3, 4));
        IllegalArgumentException misfit = assertThrows(IllegalArgumentException.class, () -> out.download(wrong));
        assertTrue(misfit.getMessage().contains("[2, 4]") && misfit.getMessage().contains("[3, 4]"),
            misfit.getMessage());
        Tensor ids = track(dev.allocate(DType.I32, 2, 4));
        assertThrows(IllegalArgumentException.class, () -> out.download(ids), "dtype differs");
    }

    @Test
    void shouldUploadTheNextContentsOnlyAfterTheReadersOfThePreviousOnes() {
        int s = orderingSize();
        int n = s * s;
        Tensor identity = track(dev.allocate(s, s));
        float[] eye = new float[n];
        for (int i = 0; i < s; i++) {
            eye[i * s + i] = 1f;
        }
        dev.copyFromHost(eye, identity);
        Tensor acc = track(dev.allocate(s, s));
        Tensor second = track(dev.allocate(s, s));
        dev.fill(second, Float.NaN);
        StagedInput in = track(dev.openStagedInput(DType.F32, s, s));
        Tensor host = in.host();
        float[] x1 = pattern(n, 1);
        float[] x2 = pattern(n, 2);
        host.device().copyFromHost(x1, host);
        in.upload();
        Tensor x = in.acquire();
        int readers = 10;
        for (int i = 0; i < readers; i++) {
            dev.matmul(false, false, s, s, s, 1f, x, identity, 1f, acc);   // acc += x, slowly
        }
        in.release();
        in.awaitUpload();                            // the host bytes of x1 have been read
        host.device().copyFromHost(x2, host);        // while the GEMMs may still be reading x1 on the device
        in.upload();                                 // must wait for those GEMMs
        dev.copy(in.acquire(), second);
        in.release();
        float[] got = acc.toFloatArray();
        for (int i = 0; i < n; i++) {
            assertEquals(readers * x1[i], got[i], "acc element " + i + " read the next upload's bytes");
        }
        assertArrayEquals(x2, second.toFloatArray());
    }

    @Test
    void shouldOpenStagedInputsFromTheNetworksThreadWhileTheStageComputes() throws Exception {
        int n = 4096;
        int inputs = 32;
        StagedInput[] opened = new StagedInput[inputs];
        Thread network = new Thread(() -> {
            for (int i = 0; i < inputs; i++) {
                opened[i] = dev.openStagedInput(DType.F32, 4, n / 4);   // as a receive buffer's first use does
            }
        }, "test-network");
        Tensor x = track(dev.allocate(n));
        Tensor acc = track(dev.allocate(n));
        float[] p = pattern(n, 3);
        dev.copyFromHost(p, x);
        network.start();
        int rounds = 200;
        for (int r = 0; r < rounds; r++) {
            try (Tensor scratch = dev.allocate(n)) {   // allocator traffic on this thread meanwhile
                dev.copy(x, scratch);
                dev.axpy(1f, scratch, acc);
            }
        }
        network.join(60_000);
        for (StagedInput in : opened) {
            assertTrue(in != null, "the network thread did not open every input");
            track(in);
        }
        float[] got = acc.toFloatArray();
        for (int i = 0; i < n; i++) {
            assertEquals(rounds * p[i], got[i], "acc element " + i);
        }
        for (int i = 0; i < inputs; i++) {
            float[] q = pattern(n, 100 + i);
            Tensor host = opened[i].host();
            host.device().copyFromHost(q, host);
            opened[i].upload();
            assertArrayEquals(q, opened[i].acquire().toFloatArray(), "input " + i);
            opened[i].release();
        }
    }
}
