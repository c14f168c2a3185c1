package io.troupe.runtime.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.device.Device;
import io.troupe.runtime.device.DeviceKind;
import io.troupe.runtime.device.StagedInput;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.function.Supplier;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.Timeout;

/**
 * The copies between a device tensor and a host tensor ({@link Device#copyToHost(Tensor, Tensor)},
 * {@link Device#copyFromHost(Tensor, Tensor)}) on a device under test: random data through views at
 * offsets, both directions, into CPU memory and into the pinned host half of a staged input; a download
 * issued right after the kernels that write its source, an upload issued right after kernels that read its
 * destination and followed by kernels that read it; misfits refused with the sizes named. The reference
 * values travel through the array copies.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@Timeout(120)
abstract class HostCopyContractTest {
    private Device dev;
    private CpuDevice host;
    private final List<AutoCloseable> opened = new ArrayList<>();

    /** The device under test, or null when this machine has none (tests then skip with {@link #skipReason()}). */
    abstract Device openDevice();

    String skipReason() {
        return "device under test unavailable";
    }

    /** Elements of the ordering tests' tensors (enough for the kernels to be still running on a GPU). */
    abstract int orderingElements();

    @BeforeAll
    void open() {
        dev = openDevice();
        host = new CpuDevice(1);
    }

    @AfterAll
    void closeDevices() {
        if (dev != null) {
            dev.close();
        }
        host.close();
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

    private <T extends AutoCloseable> T track(T t) {
        opened.add(t);
        return t;
    }

    private static float[] random(int n, long seed) {
        Random r = new Random(seed);
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) r.nextGaussian();
        }
        return a;
    }

    /** Small integers: every sum the ordering tests make is exact. */
    private static float[] integers(int n, long seed) {
        Random r = new Random(seed);
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = r.nextInt(64) - 32;
        }
        return a;
    }

    private Tensor deviceTensor(float[] values) {
        Tensor t = track(dev.allocate(values.length));
        dev.copyFromHost(values, t);
        return t;
    }

    private Tensor hostTensor(float[] values) {
        Tensor t = track(host.allocate(values.length));
        host.copyFromHost(values, t);
        return t;
    }

    /** {@code expected} with {@code window} written at {@code offset}. */
    private static float[] with(float[] expected, int offset, float[] window) {
        float[] out = expected.clone();
        System.arraycopy(window, 0, out, offset, window.length);
        return out;
    }

    @Test
    void shouldCopyRandomDataBothWaysThroughViewsAtOffsets() {
        int deviceLength = 1000;
        int hostLength = 777;
        int n = 501;
        int deviceOffset = 37;
        int hostOffset = 11;
        float[] d0 = random(deviceLength, 1);
        float[] h0 = random(hostLength, 2);
        Tensor d = deviceTensor(d0);
        Tensor h = hostTensor(h0);

        dev.copyToHost(d.view(deviceOffset, 3, 167), h.view(hostOffset, n));
        float[] window = Arrays.copyOfRange(d0, deviceOffset, deviceOffset + n);
        assertArrayEquals(with(h0, hostOffset, window), h.toFloatArray(), "download: the window and nothing else");
        assertArrayEquals(d0, d.toFloatArray(), "download left its source alone");

        float[] h1 = random(hostLength, 3);
        host.copyFromHost(h1, h);
        int uploadOffset = deviceLength - n;   // the last elements: a copy one past them would show
        dev.copyFromHost(h.view(hostLength - n, n), d.view(uploadOffset, n));
        float[] uploaded = Arrays.copyOfRange(h1, hostLength - n, hostLength);
        assertArrayEquals(with(d0, uploadOffset, uploaded), d.toFloatArray(), "upload: the window and nothing else");

        float[] whole = random(hostLength, 4);
        Tensor src = deviceTensor(whole);
        Tensor dst = track(host.allocate(7, 111));
        dev.copyToHost(src, dst);
        assertArrayEquals(whole, dst.toFloatArray(), "whole tensors, other shapes");
        System.out.println("host copies on " + dev.name() + ": " + n + "-element windows both ways, exact");
    }

    @Test
    void shouldCopyIntsAsTheyAre() {
        int n = 300;
        int[] ids = new int[n];
        Random r = new Random(5);
        for (int i = 0; i < n; i++) {
            ids[i] = r.nextInt();   // any bits, NaN patterns included: the copy converts nothing
        }
        Tensor d = track(dev.allocate(DType.I32, n));
        dev.copyFromHost(ids, d);
        Tensor h = track(host.allocate(DType.I32, n));
        dev.copyToHost(d, h);
        Tensor back = track(dev.allocate(DType.I32, n));
        dev.copyFromHost(h, back);
        Tensor check = track(host.allocate(DType.I32, n));
        dev.copyToHost(back, check);
        UnsafeBuffer hostInts = new UnsafeBuffer(h.address(), (int) h.lengthBytes());
        UnsafeBuffer checkInts = new UnsafeBuffer(check.address(), (int) check.lengthBytes());
        for (int i = 0; i < n; i++) {
            assertEquals(ids[i], hostInts.getInt(4 * i, ByteOrder.nativeOrder()), "downloaded element " + i);
            assertEquals(ids[i], checkInts.getInt(4 * i, ByteOrder.nativeOrder()), "round-tripped element " + i);
        }
    }

    @Test
    void shouldCopyToAndFromPinnedHostMemory() {
        int n = 2048;
        StagedInput staged = track(dev.openStagedInput(DType.F32, 2, n / 2));
        Tensor pinned = staged.host();
        assertEquals(DeviceKind.CPU, pinned.device().kind(), "the staged input's host half is a host tensor");
        float[] p = random(n, 6);
        Tensor d = deviceTensor(p);
        dev.copyToHost(d, pinned);
        assertArrayEquals(p, pinned.toFloatArray(), "download into pinned memory");

        float[] q = random(n, 7);
        pinned.device().copyFromHost(q, pinned);
        Tensor back = track(dev.allocate(n / 2));
        dev.copyFromHost(pinned.view(n / 2, n / 2), back);
        assertArrayEquals(Arrays.copyOfRange(q, n / 2, n), back.toFloatArray(), "upload from a pinned view");
    }

    @Test
    void shouldDownloadWhatTheKernelsIssuedJustBeforeWrote() {
        int n = orderingElements();
        float[] x = integers(n, 8);
        float[] y = integers(n, 9);
        Tensor a = deviceTensor(x);
        Tensor b = deviceTensor(y);
        Tensor h = hostTensor(new float[n]);
        dev.scale(a, 3f);
        dev.axpy(2f, b, a);         // a = 3x + 2y, queued
        dev.copyToHost(a, h);       // right after: must wait for both kernels
        float[] got = h.toFloatArray();
        for (int i = 0; i < n; i++) {
            assertEquals(3 * x[i] + 2 * y[i], got[i], "element " + i + " was downloaded before its kernels ran");
        }
    }

    @Test
    void shouldUploadAfterTheKernelsThatReadTheDestinationAndBeforeTheOnesThatFollow() {
        int n = orderingElements();
        float[] x1 = integers(n, 10);
        float[] x2 = integers(n, 11);
        Tensor d = deviceTensor(x1);
        Tensor acc = track(dev.allocate(n));
        Tensor h = hostTensor(x2);
        StagedInput staged = track(dev.openStagedInput(DType.F32, n));
        Tensor pinned = staged.host();
        pinned.device().copyFromHost(x1, pinned);

        dev.axpy(1f, d, acc);           // reads x1, queued
        dev.copyFromHost(h, d);         // must not overtake that read
        dev.axpy(10f, d, acc);          // must read x2
        dev.copyFromHost(pinned, d);    // pinned memory is read when the copy runs: it must have run on return
        pinned.device().copyFromHost(x2, pinned);
        dev.axpy(100f, d, acc);         // must read x1
        float[] got = acc.toFloatArray();
        for (int i = 0; i < n; i++) {
            assertEquals(x1[i] + 10 * x2[i] + 100 * x1[i], got[i], "element " + i);
        }
    }

    @Test
    void shouldRefuseMisfitsNamingTheSizes() {
        Tensor d = track(dev.allocate(12));
        Tensor h = track(host.allocate(10));
        assertRefused(() -> assertThrows(IllegalArgumentException.class, () -> dev.copyToHost(d, h)),
            "copyToHost", "12", "10");
        assertRefused(() -> assertThrows(IllegalArgumentException.class, () -> dev.copyFromHost(h, d)),
            "copyFromHost", "10", "12");
        Tensor ints = track(host.allocate(DType.I32, 12));
        assertRefused(() -> assertThrows(IllegalArgumentException.class, () -> dev.copyToHost(d, ints)),
            "copyToHost", "F32", "I32");
        assertRefused(() -> assertThrows(IllegalArgumentException.class, () -> dev.copyFromHost(ints, d)),
            "copyFromHost", "I32", "F32");
        if (dev.kind() != DeviceKind.CPU) {
            Tensor other = track(dev.allocate(12));
            assertRefused(() -> assertThrows(IllegalArgumentException.class, () -> dev.copyToHost(d, other)),
                "copyToHost", "hostDst", "host memory");
            assertRefused(() -> assertThrows(IllegalArgumentException.class, () -> dev.copyFromHost(other, d)),
                "copyFromHost", "hostSrc", "host memory");
            Tensor h12 = track(host.allocate(12));
            assertRefused(() -> assertThrows(IllegalArgumentException.class, () -> dev.copyToHost(h12, h12)),
                "copyToHost", "src", dev.name());
        }
    }

    private static void assertRefused(Supplier<IllegalArgumentException> refusal, String... words) {
        String message = refusal.get().getMessage();
        for (String w : words) {
            assertTrue(message.contains(w), "'" + w + "' missing from: " + message);
        }
    }
}
