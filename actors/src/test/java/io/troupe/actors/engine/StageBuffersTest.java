package io.troupe.actors.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.device.AbstractStagedInput;
import io.troupe.runtime.device.Device;
import io.troupe.runtime.device.StagedOutput;
import io.troupe.runtime.tensor.Tensor;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@link StageBuffers} against a device that stages like a GPU, on the CPU: inputs have separate host
 * and device tensors (bytes move only on upload), and downloads snapshot the source but complete only
 * when the test says so (or on await). So the paths a GPU stage takes (queued sends, sends in issue
 * order, the oldest awaited before the worker would wait, snapshots surviving overwrites) run here.
 */
@Timeout(30)
class StageBuffersTest {
    private final CpuDevice cpu = new CpuDevice(1);
    private final List<DeferredOutput> outputs = new ArrayList<>();
    private final Device gpuLike = (Device) Proxy.newProxyInstance(Device.class.getClassLoader(),
        new Class<?>[] {Device.class}, (proxy, m, args) -> {
            if (m.getName().equals("openStagedInput")) {
                return new CopyingInput(cpu, (int[]) args[1]);
            }
            if (m.getName().equals("openStagedOutput")) {
                DeferredOutput o = new DeferredOutput(cpu, (int[]) args[1]);
                outputs.add(o);
                return o;
            }
            try {
                return m.invoke(cpu, args);
            } catch (InvocationTargetException e) {
                throw e.getCause();
            }
        });
    private final List<String> sent = new ArrayList<>();
    private final List<float[]> sentValues = new ArrayList<>();
    private final StageLink link = new StageLink() {
        @Override
        public void sendActivation(int dp, int pp, long step, int mb, int v, Tensor t) {
            sent.add("act mb=" + mb + " v=" + v + " to pp=" + pp);
            sentValues.add(t.toFloatArray());
        }

        @Override
        public void sendGradient(int dp, int pp, long step, int mb, int v, Tensor t) {
            sent.add("grad mb=" + mb + " v=" + v + " to pp=" + pp);
            sentValues.add(t.toFloatArray());
        }
    };

    @AfterEach
    void close() {
        cpu.close();
    }

    /** Host and device halves are different tensors; upload copies. */
    private static final class CopyingInput extends AbstractStagedInput {
        private final Tensor host;
        private final Tensor device;

        CopyingInput(CpuDevice cpu, int[] shape) {
            super("copying input");
            host = cpu.allocate(shape);
            device = cpu.allocate(shape);
            cpu.fill(device, Float.NaN);
        }

        @Override
        public Tensor host() {
            return host;
        }

        @Override
        protected void onUpload() {
            host.device().copy(host, device);
        }

        @Override
        protected Tensor onAcquire() {
            return device;
        }

        @Override
        protected void onRelease() {
        }

        @Override
        public void awaitUpload() {
        }

        @Override
        public void close() {
            host.close();
            device.close();
        }
    }

    /** Snapshots on download; done only after {@link #complete()} or {@link #await()}. */
    private static final class DeferredOutput implements StagedOutput {
        private final Tensor host;
        private boolean inFlight;
        private boolean any;

        DeferredOutput(CpuDevice cpu, int[] shape) {
            host = cpu.allocate(shape);
        }

        @Override
        public void download(Tensor src) {
            host.device().copy(src, host);
            inFlight = true;
            any = true;
        }

        void complete() {
            inFlight = false;
        }

        @Override
        public boolean isDone() {
            return any && !inFlight;
        }

        @Override
        public void await() {
            inFlight = false;
        }

        @Override
        public Tensor host() {
            if (!isDone()) {
                throw new IllegalStateException("host() while in flight");
            }
            return host;
        }

        @Override
        public void close() {
            host.close();
        }
    }

    private Tensor filled(float value) {
        Tensor t = cpu.allocate(2, 3);
        cpu.fill(t, value);
        return t;
    }

    @Test
    void shouldQueueSendsUntilTheirDownloadIsDoneAndSendInIssueOrder() {
        try (StageBuffers b = new StageBuffers(gpuLike); Tensor out = filled(1f)) {
            b.send(link, false, 0, 1, 7, 0, 0, 0, out);
            cpu.fill(out, 2f);                        // the next micro-batch overwrites the output at once
            b.send(link, false, 0, 1, 7, 1, 0, 0, out);
            cpu.fill(out, 3f);
            b.send(link, true, 0, 0, 7, 2, 1, 0, out);
            assertEquals(List.of(), sent, "nothing is in host memory yet");
            outputs.get(1).complete();                // a later one finishes first
            b.sendCompleted(link);
            assertEquals(List.of(), sent, "sends leave in issue order");
            outputs.get(0).complete();
            b.sendCompleted(link);
            assertEquals(List.of("act mb=0 v=0 to pp=1", "act mb=1 v=0 to pp=1"), sent);
            assertTrue(b.sendOldest(link), "the worker awaits the oldest before it would wait for input");
            assertEquals("grad mb=2 v=0 to pp=0", sent.get(2));
            assertTrue(!b.sendOldest(link), "nothing left");
            assertArrayEquals(new float[] {1, 1, 1, 1, 1, 1}, sentValues.get(0), "snapshot at download");
            assertArrayEquals(new float[] {2, 2, 2, 2, 2, 2}, sentValues.get(1));
            assertArrayEquals(new float[] {3, 3, 3, 3, 3, 3}, sentValues.get(2));
        }
    }

    @Test
    void shouldReuseOneOutputPerKindMicroBatchAndStage() {
        try (StageBuffers b = new StageBuffers(gpuLike); Tensor out = filled(5f)) {
            for (int step = 0; step < 3; step++) {
                b.send(link, false, 0, 1, step, 0, 0, 0, out);
                b.send(link, true, 0, 0, step, 0, 0, 0, out);
                b.sendAll(link);
            }
            assertEquals(2, outputs.size(), "one staged output per (kind, mb, v), reused every step");
            assertEquals(6, sent.size());
        }
    }

    @Test
    void shouldHandTheStageTheUploadedDeviceTensorNotTheHostOne() {
        try (StageBuffers b = new StageBuffers(gpuLike)) {
            Tensor host = b.receiveBuffer(false, 3, 1, new int[] {2, 3});   // the network's first delivery
            cpu.fill(host, 4f);
            assertThrows(IllegalStateException.class, () -> b.acquire(false, 3, 1), "acquire before the notice");
            b.upload(false, 3, 1);
            Tensor dev = b.acquire(false, 3, 1);
            assertNotSame(host, dev);
            assertArrayEquals(new float[] {4, 4, 4, 4, 4, 4}, dev.toFloatArray());
            b.release(false, 3, 1);
            IllegalStateException none = assertThrows(IllegalStateException.class, () -> b.upload(true, 3, 1));
            assertTrue(none.getMessage().contains("no gradient received for mb=3, v=1"), none.getMessage());
        }
    }

    @Test
    void shouldFreeOnlyTheEvaluationBuffers() {
        try (StageBuffers b = new StageBuffers(gpuLike); Tensor out = filled(1f)) {
            b.receiveBuffer(false, 0, 0, new int[] {2, 3});
            Tensor evalHost = b.receiveBuffer(false, 4, 0, new int[] {2, 3});
            b.send(link, false, 0, 1, 0, 4, 0, 0, out);
            b.sendAll(link);
            b.closeFrom(4);
            assertTrue(!evalHost.storage().isOpen(), "the evaluation input is freed");
            b.upload(false, 0, 0);   // training buffers stay
            b.acquire(false, 0, 0);
            b.release(false, 0, 0);
            assertThrows(IllegalStateException.class, () -> b.upload(false, 4, 0));
        }
    }
}
