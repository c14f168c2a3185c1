package io.troupe.runtime.transport;

import java.util.ArrayDeque;
import java.util.concurrent.TimeUnit;

/** Shared helpers of the transport tests: a recording listener and single-threaded pumps. */
final class TransportTestSupport {
    private TransportTestSupport() {
    }

    /** Records notices (allocates; for functional tests). */
    static final class RecordingListener implements TensorReceiverAgent.Listener {
        final ArrayDeque<ReceiveSlot> ready = new ArrayDeque<>();
        final ArrayDeque<Integer> connected = new ArrayDeque<>();
        final ArrayDeque<Integer> lost = new ArrayDeque<>();
        final ArrayDeque<DropReason> corrupted = new ArrayDeque<>();

        @Override
        public void onTensorReady(ReceiveSlot slot) {
            ready.add(slot);
        }

        @Override
        public void onPeerConnected(int peerRank, String sourceIdentity) {
            connected.add(peerRank);
        }

        @Override
        public void onPeerLost(int peerRank) {
            lost.add(peerRank);
        }

        @Override
        public void onTensorCorrupted(int sourceRank, FrameKind kind, long tensorKey, DropReason reason) {
            corrupted.add(reason);
        }
    }

    /** Runs the receiver until {@code listener} has {@code count} ready slots (bounded). */
    static void awaitReady(TensorReceiverAgent rx, RecordingListener listener, int count, long timeoutMs) {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
        while (listener.ready.size() < count) {
            if (rx.doWork() == 0) {
                Thread.yield();
            }
            if (System.nanoTime() > deadline) {
                throw new AssertionError("only " + listener.ready.size() + " of " + count + " tensors within "
                    + timeoutMs + " ms; " + rx.drops() + ", aborts=" + rx.backPressureAborts());
            }
        }
    }

    /** Pumps one sender and one receiver on this thread until the sender is done (bounded). */
    static void pumpSend(TensorSender tx, TensorReceiverAgent rx, long timeoutMs) {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
        while (tx.isSending()) {
            int work = tx.doSend() + rx.doWork();
            if (work == 0) {
                Thread.yield();
            }
            if (System.nanoTime() > deadline) {
                throw new AssertionError("send not done within " + timeoutMs + " ms");
            }
        }
    }

    /** Waits (running the receiver) until the sender's publication is connected. */
    static void awaitConnected(TensorSender tx, TensorReceiverAgent rx, long timeoutMs) {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
        while (!tx.isConnected()) {
            rx.doWork();
            Thread.yield();
            if (System.nanoTime() > deadline) {
                throw new AssertionError("publication not connected within " + timeoutMs + " ms: "
                    + tx.publication().channel());
            }
        }
    }
}
