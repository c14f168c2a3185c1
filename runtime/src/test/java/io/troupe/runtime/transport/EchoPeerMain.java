package io.troupe.runtime.transport;

import io.troupe.runtime.testkit.LoopbackDriver;
import java.util.ArrayDeque;

/**
 * The child process of {@link TwoProcessTransportTest} and {@code TwoProcessIpcRingTest}: worker rank
 * 1 on its own node and driver, or, given an aeron dir as the second argument, on a node that joins
 * that (the parent's) driver; echoes every tensor it receives back to rank 0 at the endpoint given as
 * the first argument.
 * Prints {@code AERONDIR <dir>} and {@code ENDPOINT <endpoint>} when ready; runs until killed or
 * until it receives a CONTROL tensor (then exits 0).
 */
public final class EchoPeerMain {
    private EchoPeerMain() {
    }

    public static void main(String[] args) {
        TransportEndpoint parent = TransportEndpoint.parse(args[0]);
        ArrayDeque<ReceiveSlot> ready = new ArrayDeque<>();
        TransportSettings settings = args.length > 1
            ? LoopbackDriver.testSettings().withExternalDriver(args[1]) : LoopbackDriver.testSettings();
        try (TransportNode node = TransportNode.launch(settings, Throwable::printStackTrace);
             WorkerTransport worker = node.openWorker("echo", 1, 1, ready::add, Throwable::printStackTrace)) {
            System.out.println("AERONDIR " + node.aeronDir());
            TensorSender back = worker.connect(0, parent, 1);
            System.out.println("ENDPOINT " + worker.endpoint());
            System.out.flush();
            TensorReceiverAgent rx = worker.receiver();
            int[] shape = new int[4];
            while (true) {
                if (rx.doWork() == 0) {
                    Thread.onSpinWait();
                }
                ReceiveSlot slot = ready.poll();
                if (slot == null) {
                    continue;
                }
                if (slot.kind() == FrameKind.CONTROL) {
                    slot.release();
                    System.out.println("STOP");
                    return;
                }
                for (int i = 0; i < slot.rank(); i++) {
                    shape[i] = slot.dim(i);
                }
                back.send(slot.kind(), slot.step(), slot.tensorKey(), slot.dtype(), shape, slot.rank(), slot.address(),
                    slot.lengthBytes());
                slot.release();
            }
        }
    }
}
