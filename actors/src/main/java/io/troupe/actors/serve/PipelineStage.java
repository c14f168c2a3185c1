package io.troupe.actors.serve;

import io.troupe.models.infer.KvCachedGpt;
import io.troupe.models.infer.StepBatch;
import io.troupe.models.infer.StepBatchCodec;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.transport.FrameKind;
import io.troupe.runtime.transport.ReceiveSlot;
import io.troupe.runtime.transport.TensorKey;
import io.troupe.runtime.transport.TensorReceiverAgent;
import io.troupe.runtime.transport.TensorSender;
import io.troupe.runtime.transport.TransportEndpoint;
import io.troupe.runtime.transport.TransportNode;
import io.troupe.runtime.transport.WorkerTransport;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.agrona.CloseHelper;
import org.agrona.DirectBuffer;
import org.agrona.concurrent.AgentRunner;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.agrona.concurrent.IdleStrategy;
import org.agrona.concurrent.UnsafeBuffer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A later pipeline stage of a served model (stage g >= 1 of N), in the server's process or on a
 * stage host ({@link StageHost}): all it needs arrives over the data plane. Each step comes as one
 * frame from stage g - 1 holding the step's plan ({@link StepBatchCodec}: tokens, positions, block
 * tables, logit rows) and then the hidden states (rows x d_model floats). The stage runs its blocks on
 * its own thread, in arrival order, and sends the plan and its output to stage g + 1, or, on the last
 * stage, the logits (logit rows x vocab floats) back to the server (rank 0). A step it cannot run (a
 * damaged frame, a failed forward) goes on as a {@link FrameKind#CONTROL} frame naming the reason, which
 * every later stage passes on, so the server fails that step rather than waiting for it.
 *
 * <p>Block ids index this stage's own KV cache, which has the geometry of the server's; the server
 * allocates them. Frames of an older epoch (a wiring before a restart) are dropped by the receiver.
 *
 * <p>The stage's thread publishes when it entered the step it is in ({@link #stepNs}, read from any
 * thread): a stage host reports it in its heartbeat answers, so the server can tell a stage that is stuck
 * inside one step (a hung native call, a deadlock) from one that is working, and the host takes no new
 * stage while the thread of a stage it closed is still inside a step.
 */
final class PipelineStage implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(PipelineStage.class);
    /** {@link #stepSinceNs} while the thread is inside no step. */
    private static final long IDLE = Long.MIN_VALUE;

    /**
     * Called on a stage's thread as each step it runs begins, before its forward, with the stage and the
     * step's id. A test holds a step here to see a stage stuck inside it.
     */
    @FunctionalInterface
    interface StepEntry {
        StepEntry NONE = (stage, step) -> { };

        void onStep(int stage, long step);
    }

    private final KvCachedGpt model;
    private final int stage;
    private final int stages;
    private final long epoch;
    private final WorkerTransport transport;
    private final AgentRunner receiver;
    private final ExecutorService thread;
    private final StepBatch batch = new StepBatch();
    private volatile TensorSender next;
    private float[] input = new float[0];
    private UnsafeBuffer out = new UnsafeBuffer(ByteBuffer.allocateDirect(1 << 16));
    private final int[] encoded = new int[1];
    private final int[] shape = new int[1];
    private final IdleStrategy sendIdle = new BackoffIdleStrategy(64, 16, TimeUnit.MICROSECONDS.toNanos(1),
        TimeUnit.MICROSECONDS.toNanos(100));
    private final StepEntry stepEntry;
    /** When the thread entered the step it is in ({@link System#nanoTime()}), or {@link #IDLE}. */
    private volatile long stepSinceNs = IDLE;
    /** The id of the step the thread is in, or last was in. */
    private volatile long currentStep = -1;
    /** Set once {@link #close} has stopped the thread, or given up waiting for it to leave its step. */
    private volatile boolean closed;
    /** Sends to the next stage that closing the stage ended before they were done. */
    private final AtomicLong sendsEndedByClose = new AtomicLong();

    /**
     * Opens stage {@code stage}'s receiver on {@code node} (rank = stage). {@link #connect} then
     * points it at the next stage.
     */
    PipelineStage(KvCachedGpt model, TransportNode node, int stage, int stages, long epoch) {
        this(model, node, stage, stages, epoch, StepEntry.NONE);
    }

    /** As the constructor above, calling {@code stepEntry} on the stage's thread as each step begins. */
    PipelineStage(KvCachedGpt model, TransportNode node, int stage, int stages, long epoch, StepEntry stepEntry) {
        if (stage < 1 || stage >= stages) {
            throw new IllegalArgumentException("a pipeline stage here is one of 1.." + (stages - 1) + ": stage="
                + stage);
        }
        this.model = model;
        this.stage = stage;
        this.stages = stages;
        this.epoch = epoch;
        this.stepEntry = stepEntry;
        String name = "troupe-serve-stage-" + stage;
        this.thread = Executors.newSingleThreadExecutor(r -> daemon(r, name));
        this.transport = node.openWorker(name, stage, epoch, new TensorReceiverAgent.Listener() {
            @Override
            public void onTensorReady(ReceiveSlot slot) {
                try {
                    thread.execute(() -> process(slot));
                } catch (RuntimeException e) {     // closing
                    slot.release();
                }
            }
        }, t -> LOG.warn("stage {} data plane error", stage, t));
        this.receiver = startReceiver(transport, "troupe-serve-rx-" + stage);
    }

    static AgentRunner startReceiver(WorkerTransport transport, String name) {
        AgentRunner r = new AgentRunner(new BackoffIdleStrategy(16, 8, TimeUnit.MICROSECONDS.toNanos(1),
            TimeUnit.MICROSECONDS.toNanos(100)), t -> LOG.warn("{} error", name, t), null, transport.receiver());
        AgentRunner.startOnThread(r, runnable -> daemon(runnable, name));
        return r;
    }

    static Thread daemon(Runnable r, String name) {
        Thread t = new Thread(r, name);
        t.setDaemon(true);
        return t;
    }

    /** Where the previous stage sends this stage's frames. */
    TransportEndpoint endpoint() {
        return transport.endpoint();
    }

    int stage() {
        return stage;
    }

    long epoch() {
        return epoch;
    }

    /**
     * How long this stage's thread has been inside the step it is in at {@code nowNs} (a
     * {@link System#nanoTime()} value), ns; 0 while it is inside none. A step runs from the moment the
     * thread takes its frame until its output is sent on. Any thread may call it.
     */
    long stepNs(long nowNs) {
        long since = stepSinceNs;
        return since == IDLE ? 0 : Math.max(1, nowNs - since);
    }

    /** The id of the step this stage's thread is in (or was last in; -1: none yet). */
    long currentStep() {
        return currentStep;
    }

    /**
     * Whether {@link #close} has run: the thread starts no step any more, and once {@link #stepNs} reads 0 it
     * is out of the last one for good.
     */
    boolean isClosed() {
        return closed;
    }

    /** Points this stage's output at {@code peer}: stage + 1, or the server (rank 0) after the last stage. */
    void connect(TransportEndpoint peer) {
        int rank = stage == stages - 1 ? 0 : stage + 1;
        next = transport.connect(rank, peer, epoch);
    }

    /**
     * Waits (parking a millisecond at a time) until {@code connected} holds.
     *
     * @throws IllegalStateException saying {@code what} did not connect within {@code timeoutMs}
     */
    static void awaitConnected(java.util.function.BooleanSupplier connected, long timeoutMs, String what) {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
        while (!connected.getAsBoolean()) {
            if (System.nanoTime() - deadline > 0) {
                throw new IllegalStateException(what + " did not connect within " + timeoutMs + " ms");
            }
            java.util.concurrent.locks.LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(1));
        }
    }

    /** True once the publication to the next stage is connected. */
    boolean isConnected() {
        TensorSender s = next;
        return s != null && s.isConnected();
    }

    /**
     * Sends to the next stage that {@link #close} ended while they were in progress (a next stage that stopped
     * reading, say), rather than letting them run to the sender's own timeouts; the step is left unsent.
     */
    long sendsEndedByClose() {
        return sendsEndedByClose.get();
    }

    /** Offers to the next stage answered back-pressured so far (it reads more slowly than this stage sends). */
    long backPressureEvents() {
        TensorSender s = next;
        return s == null ? 0 : s.backPressureEvents();
    }

    private void process(ReceiveSlot slot) {
        long step = slot.step();
        currentStep = step;
        stepSinceNs = System.nanoTime();
        try {
            if (slot.kind() == FrameKind.CONTROL) {
                forward(slot.buffer(), (int) slot.lengthBytes(), step);
                return;
            }
            run(slot, step);
        } catch (RuntimeException | Error e) {    // an Error too (out of memory in the forward): the step is answered
            if (Thread.currentThread().isInterrupted()) {
                LOG.info("pipeline stage {} closed with step {} unsent: {}", stage, step, e.getMessage());
                return;             // closing: nothing more goes to the next stage
            }
            LOG.warn("pipeline stage {} could not run step {}", stage, step, e);
            byte[] why = ("stage " + stage + ": " + e.getMessage()).getBytes(StandardCharsets.UTF_8);
            UnsafeBuffer b = new UnsafeBuffer(ByteBuffer.allocateDirect(why.length));
            b.putBytes(0, why);
            try {
                forward(b, why.length, step);
            } catch (RuntimeException | Error e2) {
                LOG.warn("pipeline stage {} could not pass on the failure of step {}", stage, step, e2);
            }
        } finally {
            slot.release();
            stepSinceNs = IDLE;
        }
    }

    private void forward(DirectBuffer reason, int length, long step) {
        ensureOut(length);
        out.putBytes(0, reason, 0, length);
        send(FrameKind.CONTROL, step, DType.I8, length);
    }

    private void run(ReceiveSlot slot, long step) {
        DirectBuffer in = slot.buffer();
        int length = (int) slot.lengthBytes();
        int c = model.config().dModel();
        int planBytes = StepBatchCodec.decode(in, 0, length, batch, model.cache().numBlocks(),
            model.cache().blockSize(), model.config().seqLen(), model.config().vocabSize());
        int floats = batch.size() * c;
        if (length - planBytes != 4L * floats) {
            throw new IllegalArgumentException("step " + step + " carries " + (length - planBytes) + " bytes of hidden"
                + " states, expected " + 4L * floats + " (" + batch.size() + " rows x " + c + ")");
        }
        if (input.length < floats) {
            input = new float[floats];
        }
        for (int i = 0; i < floats; i++) {
            input[i] = in.getFloat(planBytes + 4 * i);
        }
        stepEntry.onStep(stage, step);
        float[] y = model.stageForward(batch, input);
        int bytes;
        if (model.isLastStage()) {
            bytes = 4 * y.length;
            ensureOut(bytes);
            for (int i = 0; i < y.length; i++) {
                out.putFloat(4 * i, y[i]);
            }
        } else {
            out = encodeStep(batch, y, floats, out, encoded);
            bytes = encoded[0];
        }
        send(FrameKind.ACTIVATION, step, DType.F32, bytes);
    }

    private void ensureOut(int bytes) {
        if (out.capacity() < bytes) {
            out = new UnsafeBuffer(ByteBuffer.allocateDirect(Math.max(bytes, 2 * out.capacity())));
        }
    }

    private void send(FrameKind kind, long step, DType dtype, int bytes) {
        TensorSender s = next;
        if (s == null) {
            throw new IllegalStateException("stage " + stage + " is not connected to the next stage");
        }
        long key = TensorKey.of((int) (step & TensorKey.MAX_MICROBATCH), stage, 0);
        shape[0] = bytes / dtype.sizeBytes();
        s.begin(kind, step, key, dtype, shape, 1, out.addressOffset(), bytes);
        // sent chunk by chunk rather than with the blocking send, so that closing the stage (which
        // interrupts this thread) ends a send to a next stage that no longer reads, instead of waiting for
        // the sender's own timeouts
        try {
            while (s.isSending()) {
                if (Thread.currentThread().isInterrupted()) {
                    sendsEndedByClose.incrementAndGet();
                    throw new IllegalStateException("stage " + stage + " closed while sending step " + step);
                }
                sendIdle.idle(s.doSend());
            }
        } finally {
            sendIdle.reset();
        }
    }

    /**
     * Encodes a step for stage 1 from the first stage: the plan of {@code b} and {@code floats} hidden
     * values, into {@code buf} (grown as needed; the one returned holds them). Used by the server.
     */
    static UnsafeBuffer encodeStep(StepBatch b, float[] hidden, int floats, UnsafeBuffer buf, int[] length) {
        int plan = StepBatchCodec.maxBytes(b);
        UnsafeBuffer o = buf;
        if (o.capacity() < plan + 4 * floats) {
            o = new UnsafeBuffer(ByteBuffer.allocateDirect(Math.max(plan + 4 * floats, 2 * o.capacity())));
        }
        int at = StepBatchCodec.encode(b, o, 0);
        for (int i = 0; i < floats; i++) {
            o.putFloat(at + 4 * i, hidden[i]);
        }
        length[0] = at + 4 * floats;
        return o;
    }

    @Override
    public void close() {
        CloseHelper.quietClose(receiver);
        thread.shutdownNow();
        try {
            thread.awaitTermination(5, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        closed = true;
        if (stepNs(System.nanoTime()) > 0) {
            LOG.warn("pipeline stage {} (epoch {}) closed while its thread is still inside step {}", stage, epoch,
                currentStep);
        }
        CloseHelper.quietClose(next);
        CloseHelper.quietClose(transport);
    }
}
