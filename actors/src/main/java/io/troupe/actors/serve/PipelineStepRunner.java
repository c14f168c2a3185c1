package io.troupe.actors.serve;

import io.troupe.models.infer.InferenceWeights;
import io.troupe.models.infer.KvCachedGpt;
import io.troupe.models.infer.PagedKvCache;
import io.troupe.models.infer.StepBatch;
import io.troupe.models.parallel.StagePartition;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.transport.FrameKind;
import io.troupe.runtime.transport.ReceiveSlot;
import io.troupe.runtime.transport.TensorKey;
import io.troupe.runtime.transport.TensorReceiverAgent;
import io.troupe.runtime.transport.TensorSender;
import io.troupe.runtime.transport.TransportNode;
import io.troupe.runtime.transport.TransportSettings;
import io.troupe.runtime.transport.WorkerTransport;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReferenceArray;
import org.agrona.CloseHelper;
import org.agrona.concurrent.AgentRunner;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.agrona.concurrent.UnsafeBuffer;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Pipeline-parallel serving (layout {@code 1xN}): the checkpoint's blocks split into N stages as in
 * training ({@link StagePartition#balanced}), each held by a {@link StageActor} with its own step
 * executor and a KV cache of its own layers (block ids from the first stage's allocator). A step's
 * hidden states (N tokens x d_model floats) go from stage g to g+1 over the Aeron data plane (one
 * worker transport per stage on an embedded driver; the receiver agents run on their own threads
 * and only notify the stage actors). Up to N steps with disjoint sequences are in flight, so every
 * stage works at once. Every stage computes exactly the whole model's operations for its blocks,
 * so the tokens equal those of the single-stage server.
 */
final class PipelineStepRunner implements StepRunner {
    private static final Logger LOG = LoggerFactory.getLogger(PipelineStepRunner.class);
    private static final long EPOCH = 1;
    private static final long CONNECT_TIMEOUT_MS = 20_000;

    private final KvCachedGpt[] stages;
    private final ExecutorService[] executors;
    private final List<ConcurrentHashMap<Long, ReceiveSlot>> slots = new ArrayList<>();
    private final AtomicReferenceArray<ActorRef<StageActor.Command>> refs;
    private final TransportNode node;
    private final WorkerTransport[] transports;
    private final TensorSender[] senders;
    private final List<AgentRunner> receivers = new ArrayList<>();
    private long nextStepId;

    PipelineStepRunner(InferenceWeights weights, int pipelineStages, int blockTokens, int numBlocks,
                       io.troupe.models.infer.KvPrecision precision) {
        StagePartition partition = StagePartition.balanced(weights.config(), pipelineStages);
        int n = pipelineStages;
        this.stages = new KvCachedGpt[n];
        this.executors = new ExecutorService[n];
        this.refs = new AtomicReferenceArray<>(n);
        this.transports = new WorkerTransport[n];
        this.senders = new TensorSender[n];
        for (int g = 0; g < n; g++) {
            int start = partition.startBlock(g);
            int end = partition.endBlock(g);
            stages[g] = new KvCachedGpt(weights,
                new PagedKvCache(weights.config(), blockTokens, numBlocks, end - start, precision), start, end);
            slots.add(new ConcurrentHashMap<>());
        }
        TransportSettings ts = TransportSettings.defaults().withReceiveBudgetBytes(64L << 20);
        this.node = TransportNode.launch(ts, t -> LOG.warn("serving data plane error", t));
        try {
            for (int g = 0; g < n; g++) {
                transports[g] = node.openWorker("serve-stage-" + g, g, EPOCH, new Notices(g),
                    t -> LOG.warn("serving data plane error", t));
            }
            for (int g = 1; g < n; g++) {
                String rx = "troupe-serve-rx-" + g;
                AgentRunner r = new AgentRunner(new BackoffIdleStrategy(16, 8, TimeUnit.MICROSECONDS.toNanos(1),
                    TimeUnit.MICROSECONDS.toNanos(100)), t -> LOG.warn("stage receiver error", t), null,
                    transports[g].receiver());
                AgentRunner.startOnThread(r, runnable -> daemon(runnable, rx));
                receivers.add(r);
            }
            for (int g = 0; g + 1 < n; g++) {
                senders[g] = transports[g].connect(g + 1, transports[g + 1].endpoint(), EPOCH);
            }
            long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(CONNECT_TIMEOUT_MS);
            for (int g = 0; g + 1 < n; g++) {
                while (!senders[g].isConnected()) {
                    if (System.nanoTime() - deadline > 0) {
                        throw new IllegalStateException("pipeline stage " + g + " did not connect to stage " + (g + 1)
                            + " within " + CONNECT_TIMEOUT_MS + " ms");
                    }
                    Thread.sleep(1);
                }
            }
        } catch (RuntimeException | InterruptedException e) {
            close();
            if (e instanceof InterruptedException) {
                Thread.currentThread().interrupt();
            }
            throw e instanceof RuntimeException re ? re : new IllegalStateException(e);
        }
        for (int g = 0; g < n; g++) {
            String name = "troupe-serve-stage-" + g;
            executors[g] = Executors.newSingleThreadExecutor(r -> daemon(r, name));
        }
    }

    private static Thread daemon(Runnable r, String name) {
        Thread t = new Thread(r, name);
        t.setDaemon(true);
        return t;
    }

    @Override
    public int depth() {
        return stages.length;
    }

    @Override
    public KvCachedGpt allocatingModel() {
        return stages[0];
    }

    @Override
    public void start(ActorContext<?> ctx) {
        for (int g = 0; g < stages.length; g++) {
            refs.set(g, ctx.spawn(StageActor.create(stages[g], executors[g], new StageWork(g), slots.get(g)),
                "stage-" + g));
        }
    }

    @Override
    public CompletionStage<float[]> run(StepBatch batch) {
        long id = nextStepId++;
        CompletableFuture<float[]> result = new CompletableFuture<>();
        for (int g = 0; g < stages.length; g++) {
            refs.get(g).tell(new StageActor.Run(id, batch, result));
        }
        return result;
    }

    @Override
    public void close() {
        CloseHelper.quietCloseAll(receivers);
        for (ExecutorService e : executors) {
            if (e != null) {
                e.shutdownNow();
            }
        }
        CloseHelper.quietCloseAll(transports);
        CloseHelper.quietClose(node);
    }

    /** The receiver's notices: the slot is kept by step id and the stage actor told (no bytes in the message). */
    private final class Notices implements TensorReceiverAgent.Listener {
        private final int stage;

        Notices(int stage) {
            this.stage = stage;
        }

        @Override
        public void onTensorReady(ReceiveSlot slot) {
            ActorRef<StageActor.Command> ref = refs.get(stage);
            if (ref == null) {
                slot.release();
                return;
            }
            slots.get(stage).put(slot.step(), slot);
            ref.tell(new StageActor.Arrived(slot.step()));
        }
    }

    /** A stage's part of a step, on its executor. */
    private final class StageWork implements StageActor.Work {
        private final int stage;
        private float[] input = new float[0];
        private UnsafeBuffer out = new UnsafeBuffer(ByteBuffer.allocateDirect(64));

        StageWork(int stage) {
            this.stage = stage;
        }

        @Override
        public void run(StageActor.Run step, ReceiveSlot slot) {
            StepBatch batch = step.batch();
            int floats = batch.size() * stages[stage].config().dModel();
            float[] in = null;
            if (slot != null) {
                if (slot.lengthBytes() != 4L * floats) {
                    throw new IllegalStateException("stage " + stage + " got " + slot.lengthBytes() + " bytes for step "
                        + step.stepId() + ", expected " + 4L * floats);
                }
                if (input.length < floats) {
                    input = new float[floats];
                }
                for (int i = 0; i < floats; i++) {
                    input[i] = slot.buffer().getFloat(4 * i);
                }
                in = input;
            }
            float[] y = stages[stage].stageForward(batch, in);
            if (stage == stages.length - 1) {
                step.result().complete(y);
                return;
            }
            if (out.capacity() < 4 * floats) {
                out = new UnsafeBuffer(ByteBuffer.allocateDirect(Math.max(4 * floats, 2 * out.capacity())));
            }
            for (int i = 0; i < floats; i++) {
                out.putFloat(4 * i, y[i]);
            }
            long key = TensorKey.of((int) (step.stepId() & TensorKey.MAX_MICROBATCH), stage, 0);
            senders[stage].send(FrameKind.ACTIVATION, step.stepId(), key, DType.F32, out, 0, 4 * floats);
        }
    }
}
