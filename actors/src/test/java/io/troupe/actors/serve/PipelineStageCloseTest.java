package io.troupe.actors.serve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.infer.BlockTable;
import io.troupe.models.infer.InferenceWeights;
import io.troupe.models.infer.KvCachedGpt;
import io.troupe.models.infer.PagedKvCache;
import io.troupe.models.infer.StepBatch;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.transport.FrameKind;
import io.troupe.runtime.transport.TensorKey;
import io.troupe.runtime.transport.TensorReceiverAgent;
import io.troupe.runtime.transport.TensorSender;
import io.troupe.runtime.transport.TransportNode;
import io.troupe.runtime.transport.TransportSettings;
import io.troupe.runtime.transport.WorkerTransport;
import java.nio.ByteBuffer;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A stage whose next stage stopped reading (stopped, or gone without its publication noticing yet)
 * is stuck sending a step's output; closing it (a stage host freeing it for a new wiring) ends that
 * send instead of waiting for the sender's back-pressure timeout.
 */
class PipelineStageCloseTest {

    @Test
    @Timeout(60)
    void shouldCloseAStageStuckSendingToANextStageThatDoesNotRead() throws Exception {
        InferenceWeights w = ServeTestSupport.weights(3);
        int layers = w.config().nLayer();
        // small terms, so that a receiver that does not read back-pressures its senders after a few steps
        TransportSettings settings = TransportSettings.defaults().withChunkBytes(4096)
            .withIpcMtuBytes(4096).withMtuBytes(4096).withTermLengthBytes(64 * 1024);
        try (TransportNode node = TransportNode.launch(settings, Throwable::printStackTrace)) {
            PagedKvCache tables = new PagedKvCache(w.config(), 4, 64, 0);
            PipelineStage stage = new PipelineStage(new KvCachedGpt(w, new PagedKvCache(w.config(), 4, 64, layers - 1),
                1, layers), node, 1, 2, 1);
            // the server's side: a receiver whose agent never runs, so nothing it is sent is ever read
            try (WorkerTransport front = node.openWorker("front", 0, 1, new TensorReceiverAgent.Listener() {
                @Override
                public void onTensorReady(io.troupe.runtime.transport.ReceiveSlot slot) {
                    slot.release();
                }
            }, Throwable::printStackTrace)) {
                stage.connect(front.endpoint());
                PipelineStage.awaitConnected(stage::isConnected, 10_000, "stage to front");
                TensorSender toStage = front.connect(1, stage.endpoint(), 1);
                PipelineStage.awaitConnected(toStage::isConnected, 10_000, "front to stage");
                StepBatch b = new StepBatch();
                Random rnd = new Random(5);
                UnsafeBuffer buf = new UnsafeBuffer(ByteBuffer.allocateDirect(1 << 12));
                int[] length = new int[1];
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
                for (int step = 0; stage.backPressureEvents() == 0; step++) {
                    assertTrue(System.nanoTime() < deadline, "the stage was never back-pressured");
                    if (step < 200) {          // every step answers a row of logits: 1 KiB each
                        BlockTable t = new BlockTable();
                        assertTrue(tables.ensureCapacity(t, 1));
                        b.clear();
                        b.add(rnd.nextInt(256), 0, t, true);
                        float[] hidden = new float[w.config().dModel()];
                        for (int i = 0; i < hidden.length; i++) {
                            hidden[i] = (float) rnd.nextGaussian();
                        }
                        buf = PipelineStage.encodeStep(b, hidden, hidden.length, buf, length);
                        long key = TensorKey.of(step, 0, 0);
                        toStage.send(FrameKind.ACTIVATION, step, key, DType.F32, buf, 0, length[0]);
                        tables.free(t);
                    } else {
                        Thread.sleep(10);
                    }
                }
                assertTrue(stage.stepNs(System.nanoTime()) > 0, "the stage is inside the step it cannot send");
                long start = System.nanoTime();
                stage.close();
                long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
                System.out.println("closing a stage stuck in a send took " + ms + " ms");
                // left on its own, the send would end only at the sender's 10 s back-pressure timeout, and close
                // would give up waiting for the thread after 5 s: the send must have been ended by the close
                long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
                while (stage.stepNs(System.nanoTime()) > 0) {
                    assertTrue(System.nanoTime() < until, "the stage's thread never left its step");
                    Thread.sleep(10);
                }
                assertEquals(1, stage.sendsEndedByClose(), "the send in progress was ended by the close");
            }
        }
    }
}
