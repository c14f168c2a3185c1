package io.troupe.runtime.transport;

import static io.troupe.runtime.transport.TransportTestSupport.RecordingListener;
import static io.troupe.runtime.transport.TransportTestSupport.awaitConnected;
import static io.troupe.runtime.transport.TransportTestSupport.awaitReady;
import static io.troupe.runtime.transport.TransportTestSupport.pumpSend;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.testkit.LoopbackDriver;
import io.troupe.runtime.testkit.NativeMemory;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Reassembly of interleaved senders, the budget's back-pressure, lookups by key, and liveness notices. */
class TensorReceiverAgentTest {
    private LoopbackDriver driver;

    @AfterEach
    void tearDown() {
        if (driver != null) {
            driver.close();
        }
    }

    /**
     * An in-place consumer that answers {@link InPlaceConsumer#LATER} leaves the message in the log:
     * it is offered again (the same key) on later polls, and taken whole once the consumer accepts.
     */
    @Test
    @Timeout(60)
    void shouldOfferAMessageLeftForLaterAgainAndDeliverItWhole() {
        driver = LoopbackDriver.start(LoopbackDriver.testSettings());
        RecordingListener listener = new RecordingListener();
        WorkerTransport rx = driver.openWorker("rx", 9, 3, listener);
        WorkerTransport w = driver.openWorker("tx", 0, 3, new RecordingListener());
        TensorSender tx = w.connect(9, rx.endpoint(), 3);
        awaitConnected(tx, rx.receiver(), 10_000);
        int count = 200_000 / 4; // several IPC fragments, below the same-JVM by-reference size
        try (NativeMemory src = new NativeMemory(4L * count).fillRandom(11);
             NativeMemory dst = new NativeMemory(4L * count)) {
            long[] offers = new long[1];
            long[] received = new long[1];
            boolean[] whole = new boolean[1];
            InPlaceConsumer.Sink sink = new InPlaceConsumer.Sink() {
                @Override
                public void onData(long address, long tensorOffset, int lengthBytes) {
                    org.agrona.UnsafeApi.copyMemory(address, dst.address() + tensorOffset, lengthBytes);
                    received[0] += lengthBytes;
                }

                @Override
                public void onEnd(boolean complete) {
                    whole[0] = complete;
                }
            };
            rx.receiver().inPlaceConsumer((sourceRank, kind, key, step, dtype, totalBytes) ->
                ++offers[0] <= 3 ? InPlaceConsumer.LATER : sink);
            int[] shape = {count};
            tx.begin(FrameKind.GRADIENT, 1, TensorKey.of(0, 0, 7), DType.F32, shape, 1, src.address(), 4L * count);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (!whole[0]) {
                if (tx.isSending()) {
                    tx.doSend();
                }
                rx.receiver().doWork();
                assertTrue(System.nanoTime() < deadline, "not taken in place; offers=" + offers[0] + ", "
                    + rx.receiver().drops());
            }
            assertEquals(4, offers[0], "offered once per poll until accepted");
            assertEquals(4L * count, received[0]);
            assertEquals(-1, NativeMemory.firstDifference(src.address(), dst.address(), 4L * count));
            assertTrue(listener.ready.isEmpty(), "a message taken in place must not also reach a slot");
        }
    }

    @Test
    @Timeout(60)
    void shouldReassembleInterleavedTensorsFromSeveralSendersIntact() {
        driver = LoopbackDriver.start(LoopbackDriver.testSettings().withChunkBytes(64 * 1024));
        RecordingListener listener = new RecordingListener();
        WorkerTransport rx = driver.openWorker("rx", 9, 3, listener);
        int senders = 3;
        int perSender = 6;
        List<TensorSender> txs = new ArrayList<>();
        for (int s = 0; s < senders; s++) {
            WorkerTransport w = driver.openWorker("tx" + s, s, 3, new RecordingListener());
            TransportEndpoint ep = rx.endpoint();
            // sender 1 goes over UDP, the others over IPC: both subscriptions feed one receiver
            TransportEndpoint target = s == 1 ? new TransportEndpoint("remote", ep.host(), ep.port(), ep.streamId())
                : ep;
            TensorSender tx = w.connect(9, target, 3);
            awaitConnected(tx, rx.receiver(), 10_000);
            txs.add(tx);
        }
        SplittableRandom random = new SplittableRandom(7);
        NativeMemory[][] sources = new NativeMemory[senders][perSender];
        int[] next = new int[senders];
        try {
            for (int s = 0; s < senders; s++) {
                for (int t = 0; t < perSender; t++) {
                    sources[s][t] = new NativeMemory(4L * (1 + random.nextInt(200_000))).fillRandom(s * 100 + t);
                }
            }
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(40);
            int done = 0;
            while (done < senders * perSender || listener.ready.size() < senders * perSender) {
                // one chunk-sized step of every sender in turn, so chunks of different tensors interleave
                for (int s = 0; s < senders; s++) {
                    TensorSender tx = txs.get(s);
                    if (!tx.isSending() && next[s] < perSender) {
                        NativeMemory m = sources[s][next[s]];
                        int[] shape = {(int) (m.lengthBytes() / 4)};
                        tx.begin(FrameKind.GRADIENT, 1, TensorKey.of(0, 0, next[s]), DType.F32, shape, 1, m.address(),
                            m.lengthBytes());
                        next[s]++;
                        done++;
                    }
                    if (tx.isSending()) {
                        tx.doSend();
                    }
                }
                rx.receiver().doWork();
                assertTrue(System.nanoTime() < deadline, "timed out; " + rx.receiver().drops() + ", peers lost "
                    + listener.lost);
            }
            for (int s = 0; s < senders; s++) {
                for (int t = 0; t < perSender; t++) {
                    ReceiveSlot slot = rx.receiver().takeReady(s, FrameKind.GRADIENT, TensorKey.of(0, 0, t));
                    assertNotNull(slot, "tensor " + t + " of sender " + s);
                    assertNull(rx.receiver().takeReady(s, FrameKind.GRADIENT, TensorKey.of(0, 0, t)), "taken twice");
                    NativeMemory m = sources[s][t];
                    assertEquals(m.lengthBytes(), slot.lengthBytes());
                    assertEquals(-1, NativeMemory.firstDifference(m.address(), slot.address(), m.lengthBytes()),
                        "first differing byte of tensor " + t + " from sender " + s);
                    slot.release();
                }
            }
            assertEquals(senders * perSender, listener.ready.size());
            assertEquals(0, rx.receiver().drops().total(), rx.receiver().drops().toString());
            rx.receiver().doWork();
            assertEquals(0, rx.receiver().pool().activeCount(), "all slots back in the pool");
        } finally {
            for (NativeMemory[] row : sources) {
                for (NativeMemory m : row) {
                    if (m != null) {
                        m.close();
                    }
                }
            }
        }
        assertTrue(driver.errors().isEmpty(), driver.errors().toString());
    }

    @Test
    @Timeout(60)
    void shouldBackPressureSenderWhenBudgetIsFullAndResumeAfterRelease() {
        int tensorBytes = 1024 * 1024;
        driver = LoopbackDriver.start(LoopbackDriver.testSettings()
            .withLocalCopyMinBytes(Long.MAX_VALUE) // through the log: buffered by Aeron until the budget frees
            .withReceiveBudgetBytes(2L * tensorBytes)
            .withChunkBytes(256 * 1024)
            .withTermLengthBytes(8 * 1024 * 1024)
            .withBackPressureTimeoutNs(TimeUnit.MILLISECONDS.toNanos(300)));
        RecordingListener listener = new RecordingListener();
        WorkerTransport rx = driver.openWorker("rx", 1, 0, listener);
        WorkerTransport tx0 = driver.openWorker("tx", 0, 0, new RecordingListener());
        TensorSender tx = tx0.connect(1, rx.endpoint(), 0);
        awaitConnected(tx, rx.receiver(), 10_000);
        int count = 12; // 12 MiB into a 2 MiB budget and an 8 MiB term: must block
        try (NativeMemory src = new NativeMemory(tensorBytes).fillRandom(3)) {
            int[] shape = {tensorBytes};
            int sent = 0;
            TransportTimeoutException timeout = null;
            try {
                for (; sent < count; sent++) {
                    tx.begin(FrameKind.ACTIVATION, 0, TensorKey.of(sent, 0, 0), DType.I8, shape, 1, src.address(),
                        tensorBytes);
                    pumpSend(tx, rx.receiver(), 10_000);
                }
            } catch (TransportTimeoutException e) {
                timeout = e;
            }
            assertNotNull(timeout, "sender must be back-pressured, sent=" + sent);
            assertTrue(timeout.getMessage().contains("back-pressured"), timeout.getMessage());
            assertEquals(2, listener.ready.size(), "budget holds two tensors");
            assertTrue(rx.receiver().backPressureAborts() > 0);
            assertEquals(0, rx.receiver().drops().total(), "nothing dropped: " + rx.receiver().drops());
            // releasing makes room: everything already in the publication arrives
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            int received = 0;
            while (received < sent) {
                ReceiveSlot slot = listener.ready.poll();
                if (slot != null) {
                    assertEquals(-1, NativeMemory.firstDifference(src.address(), slot.address(), tensorBytes));
                    assertEquals(received, TensorKey.microbatch(slot.tensorKey()), "in order");
                    slot.release();
                    received++;
                }
                rx.receiver().doWork();
                assertTrue(System.nanoTime() < deadline, "received only " + received + " of " + sent);
            }
            assertTrue(rx.receiver().pool().committedBytes() <= 2L * tensorBytes, "within budget");
            assertEquals(0, rx.receiver().drops().total(), rx.receiver().drops().toString());
        }
    }

    @Test
    @Timeout(30)
    void shouldRevokeInProcessCopyWhenReceiverCannotTakeItAndNeverReadTheMemoryAfterwards() {
        int tensorBytes = 1024 * 1024;
        driver = LoopbackDriver.start(LoopbackDriver.testSettings()
            .withReceiveBudgetBytes(tensorBytes)
            .withBackPressureTimeoutNs(TimeUnit.MILLISECONDS.toNanos(200)));
        RecordingListener listener = new RecordingListener();
        WorkerTransport rx = driver.openWorker("rx", 1, 0, listener);
        WorkerTransport w = driver.openWorker("tx", 0, 0, new RecordingListener());
        TensorSender tx = w.connect(1, rx.endpoint(), 0);
        awaitConnected(tx, rx.receiver(), 10_000);
        int[] shape = {tensorBytes};
        try (NativeMemory first = new NativeMemory(tensorBytes).fillRandom(1)) {
            tx.begin(FrameKind.ACTIVATION, 0, 1, DType.I8, shape, 1, first.address(), tensorBytes);
            pumpSend(tx, rx.receiver(), 10_000);
        }
        assertEquals(1, listener.ready.size(), "first tensor copied in-process and delivered");
        NativeMemory second = new NativeMemory(tensorBytes).fillRandom(2);
        tx.begin(FrameKind.ACTIVATION, 0, 2, DType.I8, shape, 1, second.address(), tensorBytes);
        TransportTimeoutException e = assertThrows(TransportTimeoutException.class,
            () -> pumpSend(tx, rx.receiver(), 10_000), "budget is full: the receiver cannot take it");
        assertTrue(e.getMessage().contains("in-process copy"), e.getMessage());
        second.close(); // the sender gave up: its memory may go away, the receiver must not read it
        listener.ready.poll().release();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (rx.receiver().drops().count(DropReason.BAD_REFERENCE) == 0) {
            rx.receiver().doWork();
            assertTrue(System.nanoTime() < deadline, "revoked frame not dropped: " + rx.receiver().drops());
        }
        assertTrue(listener.ready.isEmpty(), "revoked tensor never delivered");
        assertEquals(1, rx.receiver().drops().total());
        // the link is usable again
        try (NativeMemory third = new NativeMemory(tensorBytes).fillRandom(3)) {
            tx.begin(FrameKind.ACTIVATION, 0, 3, DType.I8, shape, 1, third.address(), tensorBytes);
            pumpSend(tx, rx.receiver(), 10_000);
            ReceiveSlot slot = listener.ready.poll();
            assertNotNull(slot);
            assertEquals(-1, NativeMemory.firstDifference(third.address(), slot.address(), tensorBytes));
            slot.release();
        }
    }

    @Test
    @Timeout(30)
    void shouldReportPeerConnectedAndLostWithRank() {
        driver = LoopbackDriver.start();
        RecordingListener listener = new RecordingListener();
        WorkerTransport rx = driver.openWorker("rx", 1, 0, listener);
        WorkerTransport w = driver.openWorker("tx", 4, 0, new RecordingListener());
        TensorSender tx = w.connect(1, rx.endpoint(), 0);
        awaitConnected(tx, rx.receiver(), 10_000);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (listener.connected.isEmpty()) {
            rx.receiver().doWork();
            Thread.yield();
            assertTrue(System.nanoTime() < deadline, "no connect notice");
        }
        assertEquals(4, listener.connected.peek());
        tx.close();
        deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (listener.lost.isEmpty()) {
            rx.receiver().doWork();
            Thread.yield();
            assertTrue(System.nanoTime() < deadline, "no lost notice");
        }
        assertEquals(4, listener.lost.peek());
    }

    @Test
    @Timeout(30)
    void shouldDropStaleEpochAndReclaimUnfinishedTensorsOnEpochRaise() {
        driver = LoopbackDriver.start(LoopbackDriver.testSettings().withChunkBytes(64 * 1024));
        RecordingListener listener = new RecordingListener();
        WorkerTransport rx = driver.openWorker("rx", 1, 5, listener);
        WorkerTransport w = driver.openWorker("tx", 0, 5, new RecordingListener());
        TensorSender old = w.connect(1, rx.endpoint(), 4);
        awaitConnected(old, rx.receiver(), 10_000);
        try (NativeMemory src = new NativeMemory(4096).fillRandom(1)) {
            old.send(FrameKind.CONTROL, 0, 0, DType.I8, new int[] {4096}, 1, src.address(), 4096);
            TensorSender current = w.connect(1, rx.endpoint(), 5);
            awaitConnected(current, rx.receiver(), 10_000);
            current.send(FrameKind.CONTROL, 0, 0, DType.I8, new int[] {4096}, 1, src.address(), 4096);
            awaitReady(rx.receiver(), listener, 1, 10_000);
            assertEquals(5, listener.ready.peek().epoch());
            assertEquals(1, rx.receiver().drops().count(DropReason.STALE_EPOCH));
        }
    }

    /**
     * A same-JVM sender of an older epoch hands its tensor over by reference; the receiver refuses it as
     * stale without reading it, and the sender is told at once (it does not wait out its back-pressure
     * deadline for a copy that will never come).
     */
    @Test
    @Timeout(30)
    void shouldReleaseAStaleInProcessTensorWithoutCopyingIt() {
        driver = LoopbackDriver.start(LoopbackDriver.testSettings().withBackPressureTimeoutNs(TimeUnit.SECONDS.toNanos(
            3)));
        RecordingListener listener = new RecordingListener();
        WorkerTransport rx = driver.openWorker("rx", 1, 5, listener);
        WorkerTransport w = driver.openWorker("tx", 0, 5, new RecordingListener());
        TensorSender old = w.connect(1, rx.endpoint(), 4);
        awaitConnected(old, rx.receiver(), 10_000);
        int bytes = 4 << 20; // above localCopyMinBytes: by reference
        try (NativeMemory src = new NativeMemory(bytes).fillRandom(2)) {
            for (int i = 0; i < 3; i++) {
                old.begin(FrameKind.GRADIENT, 0, TensorKey.of(i, 0, 0), DType.F32, new int[] {bytes / 4}, 1,
                    src.address(), bytes);
                pumpSend(old, rx.receiver(), 10_000);
            }
            assertEquals(3, old.tensorsSent());
            assertEquals(3, rx.receiver().drops().count(DropReason.STALE_EPOCH));
            assertTrue(listener.ready.isEmpty(), "a stale tensor was delivered");
        }
    }
}
