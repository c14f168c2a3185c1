package io.troupe.runtime.transport;

import static io.troupe.runtime.transport.TransportTestSupport.RecordingListener;
import static io.troupe.runtime.transport.TransportTestSupport.awaitConnected;
import static io.troupe.runtime.transport.TransportTestSupport.awaitReady;
import static io.troupe.runtime.transport.TransportTestSupport.pumpSend;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.aeron.driver.MediaDriver;
import io.aeron.driver.ext.DebugReceiveChannelEndpoint;
import io.aeron.driver.ext.LossGenerator;
import io.aeron.driver.ext.RandomLossGenerator;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.testkit.LoopbackDriver;
import io.troupe.runtime.testkit.NativeMemory;
import java.io.File;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicLong;
import org.agrona.CloseHelper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Packets lost on the wire cost time, never bytes: a media driver that drops a share of the UDP data
 * frames it receives (Aeron's debug receive endpoint, seeded) still delivers every tensor intact,
 * through Aeron's NAKs and retransmits, and the receiver counts no bad frame. Once with a loss generator
 * that counts what it drops, once through the {@code udpLossRate} setting chaos runs use.
 */
class UdpLossTest {
    @Test
    @Timeout(120)
    void shouldDeliverEveryTensorIntactWhenTheWireDropsDataFrames() {
        List<Throwable> errors = new CopyOnWriteArrayList<>();
        String dir = new File(System.getProperty("java.io.tmpdir"), "troupe-udp-loss-" + ProcessHandle.current().pid())
            .getPath();
        TransportSettings settings = LoopbackDriver.testSettings();
        AtomicLong dropped = new AtomicLong();
        LossGenerator fivePercent = new RandomLossGenerator(0.05, 42);
        LossGenerator counting = (address, buffer, length) -> {
            boolean drop = fivePercent.shouldDropFrame(address, buffer, length);
            if (drop) {
                dropped.incrementAndGet();
            }
            return drop;
        };
        MediaDriver driver = MediaDriver.launch(TransportNode.driverContext(settings, dir, errors::add)
            .receiveChannelEndpointSupplier((channel, dispatcher, status, context) ->
                new DebugReceiveChannelEndpoint(channel, dispatcher, status, context, counting, (a, b, l) -> false)));
        TransportNode node = null;
        try {
            node = TransportNode.launch(settings.withExternalDriver(dir), errors::add);
            exchange(node, errors);
            long naks = node.driverCounter("naks sent");
            long retransmits = node.driverCounter("retransmits sent");
            System.out.printf("udp loss: %d data frames dropped, %d NAKs, %d retransmits%n", dropped.get(), naks,
                retransmits);
            assertTrue(dropped.get() > 0, "the loss generator dropped nothing");
            assertTrue(naks > 0 && retransmits > 0, "losses were not repaired by NAK and retransmit: naks=" + naks
                + ", retransmits=" + retransmits);
            assertTrue(errors.isEmpty(), errors.toString());
        } finally {
            CloseHelper.quietCloseAll(node, driver);
        }
    }

    @Test
    @Timeout(120)
    void shouldRepairTheLossTheUdpLossRateSettingInjects() {
        List<Throwable> errors = new CopyOnWriteArrayList<>();
        try (TransportNode node = TransportNode.launch(LoopbackDriver.testSettings().withUdpLossRate(0.05),
            errors::add)) {
            exchange(node, errors);
            long naks = node.driverCounter("naks sent");
            long retransmits = node.driverCounter("retransmits sent");
            assertTrue(naks > 0 && retransmits > 0, "no loss injected or none repaired: naks=" + naks
                + ", retransmits=" + retransmits);
            assertTrue(errors.isEmpty(), errors.toString());
        }
    }

    /** Sends tensors of 4 B to 12 MiB over UDP loopback, three rounds, and checks each byte for byte. */
    private static void exchange(TransportNode node, List<Throwable> errors) {
        RecordingListener listener = new RecordingListener();
        WorkerTransport rx = node.openWorker("rx", 1, 1, listener, errors::add);
        WorkerTransport txWorker = node.openWorker("tx", 0, 1, slot -> { }, errors::add);
        TransportEndpoint ep = rx.endpoint();
        TensorSender tx = txWorker.connect(1, new TransportEndpoint("elsewhere", ep.host(), ep.port(), ep.streamId()),
            1);
        assertTrue(tx.publication().channel().startsWith("aeron:udp"), tx.publication().channel());
        awaitConnected(tx, rx.receiver(), 20_000);
        long[] sizes = {4, 4096, 65_532, 1_000_004, 4L * 1024 * 1024, 12L * 1024 * 1024 + 12};
        for (int round = 0; round < 3; round++) {
            for (int i = 0; i < sizes.length; i++) {
                try (NativeMemory src = new NativeMemory(sizes[i]).fillRandom(31L * round + i)) {
                    tx.begin(FrameKind.GRADIENT, round, TensorKey.of(i, 0, round), DType.I8,
                        new int[] {(int) sizes[i]}, 1, src.address(), sizes[i]);
                    pumpSend(tx, rx.receiver(), 60_000);
                    awaitReady(rx.receiver(), listener, 1, 60_000);
                    ReceiveSlot slot = listener.ready.poll();
                    assertEquals(TensorKey.of(i, 0, round), slot.tensorKey());
                    assertEquals(-1, NativeMemory.firstDifference(src.address(), slot.address(), sizes[i]),
                        "tensor of " + sizes[i] + " bytes, round " + round);
                    slot.release();
                }
            }
        }
        assertEquals(0, rx.receiver().drops().total(), rx.receiver().drops().toString());
    }
}
