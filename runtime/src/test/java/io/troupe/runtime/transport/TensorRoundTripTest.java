package io.troupe.runtime.transport;

import static io.troupe.runtime.transport.TransportTestSupport.RecordingListener;
import static io.troupe.runtime.transport.TransportTestSupport.awaitConnected;
import static io.troupe.runtime.transport.TransportTestSupport.awaitReady;
import static io.troupe.runtime.transport.TransportTestSupport.pumpSend;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.testkit.LoopbackDriver;
import io.troupe.runtime.testkit.NativeMemory;
import java.util.Arrays;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** Tensors of many sizes and shapes sent over IPC and UDP arrive byte for byte. */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class TensorRoundTripTest {
    private LoopbackDriver driver;
    private RecordingListener listener;
    private WorkerTransport sender;
    private WorkerTransport receiver;

    private final java.util.Map<String, LoopbackDriver> drivers = new java.util.HashMap<>();
    private final java.util.Map<String, RecordingListener> listeners = new java.util.HashMap<>();
    private final java.util.Map<String, WorkerTransport[]> workers = new java.util.HashMap<>();

    /** One driver per setting for the whole class (starting one per case costs more than the cases). */
    private void open(TransportSettings settings) {
        String localCopy = (settings.localCopyMinBytes() != Long.MAX_VALUE) + " " + settings.threadingMode();
        if (!drivers.containsKey(localCopy)) {
            LoopbackDriver d = LoopbackDriver.start(settings);
            RecordingListener l = new RecordingListener();
            drivers.put(localCopy, d);
            listeners.put(localCopy, l);
            workers.put(localCopy, new WorkerTransport[] {d.openWorker("tx", 0, 1, new RecordingListener()),
                d.openWorker("rx", 1, 1, l)});
        }
        driver = drivers.get(localCopy);
        listener = listeners.get(localCopy);
        sender = workers.get(localCopy)[0];
        receiver = workers.get(localCopy)[1];
    }

    @AfterAll
    void tearDown() {
        drivers.values().forEach(LoopbackDriver::close);
    }

    static Stream<Arguments> shapes() {
        return Stream.of(
            Arguments.of(DType.F32, new int[] {1}),
            Arguments.of(DType.I8, new int[] {3}),
            Arguments.of(DType.BF16, new int[] {7, 13}),
            Arguments.of(DType.F32, new int[] {3, 5, 7, 11}),
            Arguments.of(DType.I32, new int[] {1000, 33}),
            Arguments.of(DType.I8, new int[] {1024 * 1024 + 1}),
            Arguments.of(DType.F32, new int[] {3, 1024 * 1024 / 4 + 17}),
            Arguments.of(DType.F32, new int[] {16, 1024, 1024}));
    }

    private TransportEndpoint target(boolean udp) {
        TransportEndpoint ep = receiver.endpoint();
        return udp ? new TransportEndpoint("elsewhere", ep.host(), ep.port(), ep.streamId()) : ep;
    }

    @ParameterizedTest(name = "{0} {1} ipc")
    @MethodSource("shapes")
    @Timeout(60)
    void shouldDeliverTensorIntactOverIpc(DType dtype, int[] shape) {
        open(LoopbackDriver.testSettings()); // same JVM: tensors from 1 MiB take the in-process copy
        roundTrip(dtype, shape, false);
    }

    @ParameterizedTest(name = "{0} {1} ipc log")
    @MethodSource("shapes")
    @Timeout(60)
    void shouldDeliverTensorIntactOverIpcLog(DType dtype, int[] shape) {
        open(LoopbackDriver.testSettings().withLocalCopyMinBytes(Long.MAX_VALUE)); // every byte through the log
        roundTrip(dtype, shape, false);
    }

    @ParameterizedTest(name = "{0} {1} udp")
    @MethodSource("shapes")
    @Timeout(60)
    void shouldDeliverTensorIntactOverUdp(DType dtype, int[] shape) {
        open(LoopbackDriver.testSettings());
        roundTrip(dtype, shape, true);
    }

    /** The driver threading {@code cluster-config/multi-host.conf} gives nodes with UDP peers. */
    @ParameterizedTest(name = "{0} {1} udp, SHARED_NETWORK driver")
    @MethodSource("shapes")
    @Timeout(60)
    void shouldDeliverTensorIntactOverUdpWithSharedNetworkDriver(DType dtype, int[] shape) {
        open(LoopbackDriver.testSettings().withThreadingMode(io.aeron.driver.ThreadingMode.SHARED_NETWORK));
        // the embedded driver really runs its sender and receiver on a thread of their own
        assertTrue(Thread.getAllStackTraces().keySet().stream().anyMatch(t -> t.getName().endsWith(
            "[sender,receiver]")),
            "no driver thread named [sender,receiver]");
        roundTrip(dtype, shape, true);
    }

    private void roundTrip(DType dtype, int[] shape, boolean udp) {
        long bytes = dtype.sizeBytes() * Arrays.stream(shape).asLongStream().reduce(1, (a, b) -> a * b);
        TensorSender tx = sender.connect(1, target(udp), 1);
        awaitConnected(tx, receiver.receiver(), 10_000);
        long key = TensorKey.of(5, 1, 42);
        try (NativeMemory src = new NativeMemory(bytes).fillRandom(bytes * 31 + shape.length)) {
            tx.begin(FrameKind.ACTIVATION, 9, key, dtype, shape, shape.length, src.address(), bytes);
            pumpSend(tx, receiver.receiver(), 30_000);
            awaitReady(receiver.receiver(), listener, 1, 30_000);
            ReceiveSlot slot = listener.ready.poll();
            assertEquals(0, slot.sourceRank());
            assertEquals(FrameKind.ACTIVATION, slot.kind());
            assertEquals(key, slot.tensorKey());
            assertEquals(9, slot.step());
            assertEquals(1, slot.epoch());
            assertEquals(dtype, slot.dtype());
            assertArrayEquals(shape, slot.shape());
            assertEquals(bytes, slot.lengthBytes());
            assertEquals(0, slot.address() % 64, "slot alignment");
            long diff = NativeMemory.firstDifference(src.address(), slot.address(), bytes);
            System.out.printf("round trip %s %s %s: %d bytes, first difference %d%n", udp ? "udp" : "ipc", dtype,
                Arrays.toString(shape), bytes, diff);
            assertEquals(-1, diff, "first differing byte");
            slot.release();
        }
        assertEquals(0, receiver.receiver().drops().total(), receiver.receiver().drops().toString());
        assertTrue(driver.errors().isEmpty(), driver.errors().toString());
    }
}
