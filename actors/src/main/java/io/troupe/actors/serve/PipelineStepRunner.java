package io.troupe.actors.serve;

import io.troupe.models.infer.InferenceWeights;
import io.troupe.models.infer.KvCachedGpt;
import io.troupe.models.infer.KvPrecision;
import io.troupe.models.infer.PagedKvCache;
import io.troupe.models.infer.StepBatch;
import io.troupe.models.parallel.StagePartition;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.transport.DropReason;
import io.troupe.runtime.transport.FrameKind;
import io.troupe.runtime.transport.ReceiveSlot;
import io.troupe.runtime.transport.TensorKey;
import io.troupe.runtime.transport.TensorReceiverAgent;
import io.troupe.runtime.transport.TensorSender;
import io.troupe.runtime.transport.TransportEndpoint;
import io.troupe.runtime.transport.TransportException;
import io.troupe.runtime.transport.TransportNode;
import io.troupe.runtime.transport.TransportSettings;
import io.troupe.runtime.transport.WorkerTransport;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import org.agrona.CloseHelper;
import org.agrona.concurrent.AgentRunner;
import org.agrona.concurrent.UnsafeBuffer;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorRefResolver;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Pipeline-parallel serving (layout {@code 1xN}): the checkpoint's blocks split into N stages as in
 * training ({@link StagePartition#balanced}). This server runs stage 0 (the embeddings and the first
 * blocks) on its own step thread; stages 1..N-1 are {@link PipelineStage}s, in this process or on
 * stage hosts ({@code troupe serve-stage}, one per later stage, {@link StageLinks}). A step goes over the
 * data plane only: stage 0 sends its plan and hidden states to stage 1, each stage to the next, and the
 * last stage sends the logits back here, where the receiver completes the step. Up to N steps with
 * disjoint sequences are in flight, so every stage works at once, and they complete in plan order.
 * Every stage computes exactly the whole model's operations for its blocks, so the tokens equal those
 * of the single-stage server.
 *
 * <p>With stage hosts, the pipeline survives their loss. A host whose node goes silent (its control
 * plane, for {@code loss-timeout}), whose stream back here ends, or to which a step cannot be sent, marks
 * the pipeline down: the steps in flight fail, the scheduler returns every running sequence to its
 * queue and pauses ({@link #onDown}), and this runner wires the pipeline again, with a new epoch, every
 * {@code retry-interval} until every host has loaded its stage and connected. The scheduler then
 * recomputes the sequences' keys and values and goes on; no request is lost, and a sequence's tokens
 * are those it would have had. Hosts named beyond the N-1 the stages need are spares: every host named
 * is heartbeaten, and a lost host's stage moves to a spare that has answered steadily (the lost host,
 * once back, is a spare in turn); with none, the stage waits for its host ({@link StagePlacement}).
 *
 * <p>A stage stuck inside one step (a hung native call, a deadlock) while its host still answers is lost the
 * same way once {@code step-timeout} passes: the hosts' heartbeat answers say how long their stage thread has
 * been inside its current step, and a step sent down the pipeline and unanswered for that long and a loss timeout
 * more is a loss too ({@link StuckStages}). A stuck host takes no stage until its answers say that step ended.
 * A step still unanswered when a step sent after it is answered fails at once ({@link PipelineSteps}): every
 * stage answers in order, so its answer went missing, and its logits must not be taken for the later step's.
 * The wiring after a loss, and the first, runs on its own thread ({@link PipelineRewiring}).
 *
 * <p>Each wiring of stage hosts sends a probe down the pipeline before it serves ({@link #PROBE_STEP}): stages
 * whose auth keys differ connect, then refuse each other's frames, so a probe not back within a loss timeout fails
 * the wiring with a reason naming {@code troupe.transport.auth-key}. The first wiring failing so stops the server's
 * start; a later one leaves the pipeline down and new requests refused at once with that reason ({@link #refuses}),
 * until a wiring's probe comes back.
 */
final class PipelineStepRunner implements StepRunner {
    private static final Logger LOG = LoggerFactory.getLogger(PipelineStepRunner.class);
    private static final long LOCAL_CONNECT_TIMEOUT_MS = 20_000;
    /**
     * The step id of the probe each wiring of stage hosts sends down the pipeline before it serves: a
     * {@link FrameKind#CONTROL} frame every stage passes on, so it comes back only if every hop takes the frames
     * of the one before (the same {@code troupe.transport.auth-key} on all). No step has it.
     */
    static final long PROBE_STEP = -1;
    private static final byte[] PROBE = "probe".getBytes(java.nio.charset.StandardCharsets.US_ASCII);
    /** The drop reasons of a frame refused for its authentication tag. */
    private static final List<DropReason> TAG_REFUSALS = List.of(DropReason.MISSING_MAC, DropReason.BAD_MAC,
        DropReason.UNEXPECTED_MAC);
    /** System name of every stage host's actor system. */
    static final String STAGE_HOST_SYSTEM = "troupe-serve-stage";

    /** One wiring of the pipeline: this server's receiver and its sender to stage 1, for one epoch. */
    private record Wiring(long epoch, WorkerTransport front, AgentRunner receiver, TensorSender toFirst) {
        void close() {
            CloseHelper.quietClose(receiver);
            CloseHelper.quietClose(front);
        }
    }

    private final InferenceWeights weights;
    private final KvCachedGpt first;
    private final int stages;
    private final int blockTokens;
    private final int numBlocks;
    private final KvPrecision precision;
    private final StagePartition partition;
    private final StageLinks links;
    private final DataPlane dataPlane;
    private final ExecutorService stage0;
    private final List<PipelineStage> local = new ArrayList<>();
    private final PipelineSteps pending = new PipelineSteps();
    private final PipelineRewiring rewiring;
    private volatile Wiring wiring;
    private volatile String down;
    /** Why the pipeline last went down for a lost or stuck stage host (kept once it is up again), or null. */
    private volatile String lastLoss;
    /** Why the last wiring failed when its probe did not come back (the hosts refuse the frames), or null. */
    private volatile String framesRefused;
    private volatile boolean closed;
    private volatile Consumer<String> onDown = reason -> { };
    private volatile Consumer<String> onRefuses = reason -> { };
    private volatile ActorRef<Object> linkActor;
    /** The stage hosts' part of a remote wiring; set by {@link #start}. */
    private volatile StageHostWiring hostWiring;
    /** The slot of the host holding each stage 1..N-1 (index 0 unused); changed only when wiring. */
    private volatile int[] assigned;
    /** What the heartbeats and loads said of each slot's host, and where the stages go from it. */
    private final StagePlacement placement;
    private final StuckStages stuckStages;
    /** Times the pipeline was down for a stage stuck inside one step. */
    private final AtomicLong stuckLosses = new AtomicLong();
    private long epochs;
    private long nextStepId;
    private UnsafeBuffer out = new UnsafeBuffer(ByteBuffer.allocateDirect(1 << 16));
    private final int[] outLength = new int[1];

    /**
     * A pipeline of {@code pipelineStages} stages: in this process when {@code links} has no hosts
     * (wired here), else on the hosts it names (wired once {@link #start} has run; see
     * {@link #awaitWired}).
     */
    PipelineStepRunner(InferenceWeights weights, int pipelineStages, int blockTokens, int numBlocks,
                       KvPrecision precision, StageLinks links, TransportSettings transport) {
        if (links.remote() && links.hosts().size() < pipelineStages - 1) {
            throw new IllegalArgumentException("a 1x" + pipelineStages + " layout needs " + (pipelineStages - 1)
                + " stage host(s) for stages 1.." + (pipelineStages - 1) + " (more are spares): --stage-hosts has "
                + links.hosts().size() + " (" + String.join(",", links.hosts()) + ")");
        }
        if (links.remote() && weights.fingerprint() == null) {
            throw new IllegalArgumentException("stage hosts load the checkpoint themselves: serve weights loaded"
                + " from a checkpoint");
        }
        this.weights = weights;
        this.stages = pipelineStages;
        this.blockTokens = blockTokens;
        this.numBlocks = numBlocks;
        this.precision = precision;
        this.links = links;
        this.partition = StagePartition.balanced(weights.config(), pipelineStages);
        this.first = new KvCachedGpt(weights, new PagedKvCache(weights.config(), blockTokens, numBlocks,
            partition.endBlock(0), precision), 0, partition.endBlock(0));
        this.dataPlane = new DataPlane(transport, "server", t -> LOG.warn("serving data plane error", t));
        this.stage0 = Executors.newSingleThreadExecutor(r -> PipelineStage.daemon(r, "troupe-serve-stage-0"));
        this.rewiring = new PipelineRewiring(links.retryInterval(), this::wireRemote, () -> closed, () -> down,
            this::notWired, this::afterStageZero);
        this.placement = new StagePlacement(links.hosts(), links.lossTimeout(), links.stepTimeout());
        this.stuckStages = new StuckStages(placement);
        int[] place = new int[pipelineStages];
        for (int g = 1; g < pipelineStages; g++) {
            place[g] = g - 1;                         // stage g on the g-th host named; the rest are spares
        }
        this.assigned = place;
        if (!links.remote()) {
            try {
                wireLocal();
            } catch (RuntimeException e) {
                close();
                throw e;
            }
        }
    }

    @Override
    public int depth() {
        return stages;
    }

    @Override
    public KvCachedGpt allocatingModel() {
        return first;
    }

    @Override
    public void start(ActorContext<?> ctx) {
        if (!links.remote()) {
            return;
        }
        ActorRefResolver resolver = ActorRefResolver.get(ctx.getSystem());
        List<ActorRef<Object>> refs = new ArrayList<>();
        for (String h : links.hosts()) {
            refs.add(resolver.resolveActorRef("pekko://" + STAGE_HOST_SYSTEM + "@" + h + "/user/" + StageHost.NAME));
        }
        List<ActorRef<Object>> hostRefs = List.copyOf(refs);
        StageHostWatch.Losses losses = new StageHostWatch.Losses() {
            @Override
            public boolean lost(String reason, long epoch) {
                return PipelineStepRunner.this.lost(reason, epoch);
            }

            @Override
            public void stuck(String reason, long epoch) {
                PipelineStepRunner.this.stuck(reason, epoch);
            }

            @Override
            public void checkStepsInFlight(int[] place, long epoch, long nowNs) {
                // the backstop: the oldest step sent and unanswered for the step timeout and a loss timeout more
                PipelineStepRunner.this.stuck(pending.overdue(stuckStages, place, epoch, nowNs), epoch);
            }
        };
        linkActor = ctx.spawn(StageHostWatch.behavior(stages, links, placement, stuckStages, hostRefs,
            weights.fingerprint(), losses), "stage-links");
        hostWiring = new StageHostWiring(stages, links, placement, weights, partition, precision, blockTokens,
            numBlocks, linkActor);
        down = "wiring the pipeline's stage hosts";
        recover(rewiring::firstWired);
    }

    /**
     * Waits for the first wiring of the stage hosts.
     *
     * @throws IllegalStateException with the last reason it failed, when it is not wired in {@code timeoutMs}
     */
    void awaitWired(long timeoutMs) {
        if (links.remote()) {
            rewiring.awaitFirst(timeoutMs);
        }
    }

    /**
     * The stage hosts named, as a JSON array of {@code {"host", "stage" (null: a spare), "answering",
     * "refuses"}}: a host answers when it answered a heartbeat within the loss timeout, and refuses (with
     * the reason it gave) when it would refuse this server's load, its checkpoint differing for one.
     */
    String stageHostsJson() {
        return placement.json(assigned, stages, System.nanoTime());
    }

    /** How many times a stage moved to a spare stage host. */
    long stageMoves() {
        return placement.moves();
    }

    /** How many times the pipeline was down for a stage stuck inside one step for the step timeout. */
    long stuckStageLosses() {
        return stuckLosses.get();
    }

    /** Why the pipeline last went down for a lost or stuck stage host, kept once it is up again; null: never. */
    String lastLoss() {
        return lastLoss;
    }

    /** Why the pipeline cannot run steps now (a stage host is lost or not wired yet), or null. */
    @Override
    public String down() {
        return down;
    }

    @Override
    public boolean recovers() {
        return links.remote();
    }

    /**
     * Why no request can be served until the stage hosts are set up again, while the pipeline is down because the
     * last wiring's probe did not come back (the stages refuse each other's frames: the auth keys differ); else
     * null, as while a lost host is being wired again.
     */
    @Override
    public String refuses() {
        String r = framesRefused;
        return r != null && r.equals(down) ? r : null;
    }

    @Override
    public void onDown(Consumer<String> listener) {
        this.onDown = listener;
    }

    @Override
    public void onRefuses(Consumer<String> listener) {
        this.onRefuses = listener;
    }

    /**
     * A wiring failed for {@code why}: the pipeline stays down with that reason; when it is that the stages refuse
     * each other's frames, the scheduler is told, so the requests waiting are answered now rather than at their
     * deadline (no wiring serves them until the hosts are set up again).
     */
    private void notWired(String why) {
        down = why;
        String refused = refuses();
        if (refused != null) {
            onRefuses.accept(refused);
        }
    }

    @Override
    public void recover(Runnable up) {
        if (down == null) {
            afterStageZero(up);
            return;
        }
        rewiring.recover(up);
    }

    @Override
    public CompletionStage<float[]> run(StepBatch batch) {
        long id = nextStepId++;
        // in pending before down is read: a loss that sets down meanwhile fails what pending holds after,
        // this step included, or this read sees it (a step sent on a lost wiring would never be answered)
        PipelineSteps.InFlightStep result = pending.open(id);
        String why = down;
        Wiring w = wiring;
        if (why != null || w == null) {
            pending.fail(id, new IllegalStateException("the pipeline is down: " + why));
            return result;
        }
        try {
            stage0.execute(() -> runFirstStage(batch, id, result, w));
        } catch (RuntimeException e) {               // closing
            pending.fail(id, e);
        }
        return result;
    }

    private void runFirstStage(StepBatch batch, long id, PipelineSteps.InFlightStep result, Wiring w) {
        try {
            float[] h = first.stageForward(batch, null);
            out = PipelineStage.encodeStep(batch, h, batch.size() * first.config().dModel(), out, outLength);
            long key = TensorKey.of((int) (id & TensorKey.MAX_MICROBATCH), 0, 0);
            result.sentNs = System.nanoTime();
            w.toFirst().send(FrameKind.ACTIVATION, id, key, DType.F32, out, 0, outLength[0]);
        } catch (TransportException e) {
            pending.fail(id, e);
            if (links.remote()) {                   // stages in this process are not lost: the step fails
                suspect(1);
                lost("cannot send to stage 1" + hostOf(1) + ": " + e.getMessage(), w.epoch());
            }
        } catch (RuntimeException | Error e) {        // answered, or the step would wait for ever
            pending.fail(id, e);
        }
    }

    private String hostOf(int stage) {
        return links.remote() ? " at " + links.hosts().get(assigned[stage]) : "";
    }

    /** The host of {@code stage} failed (silent or unreachable): a spare may take its stage. */
    private void suspect(int stage) {
        placement.failed(assigned[stage], System.nanoTime());
    }

    /**
     * A stage of {@code epoch}'s wiring is lost: fail what is in flight and tell the scheduler (once).
     *
     * @return whether this call marked the pipeline down (false: it was down already, or is on a newer wiring)
     */
    private boolean lost(String reason, long epoch) {
        synchronized (this) {
            Wiring w = wiring;
            if (closed || w == null || w.epoch() != epoch || down != null) {
                return false;
            }
            down = reason;
            lastLoss = reason;
        }
        LOG.warn("pipeline down: {}; its running sequences wait and the pipeline is wired again", reason);
        pending.failAll(new IllegalStateException("the pipeline is down: " + reason));
        onDown.accept(reason);
        return true;
    }

    /** A stage of {@code epoch}'s wiring is stuck inside one step ({@link StuckStages}): lost the same way. */
    private void stuck(String reason, long epoch) {
        if (reason != null && lost(reason, epoch)) {
            stuckLosses.incrementAndGet();
        }
    }

    /**
     * The receiver of this server (rank 0): the last stage's logits, or a failure a stage passed on; the wiring's
     * probe completes {@code probe} (null: none is sent).
     */
    private TensorReceiverAgent.Listener results(long epoch, CompletableFuture<Void> probe) {
        return new TensorReceiverAgent.Listener() {
            @Override
            public void onTensorReady(ReceiveSlot slot) {
                if (slot.step() == PROBE_STEP) {
                    slot.release();
                    if (probe != null) {
                        probe.complete(null);
                    }
                    return;
                }
                pending.complete(slot);
            }

            @Override
            public void onPeerLost(int peerRank) {
                if (links.remote()) {
                    suspect(stages - 1);
                    lost("the stream from the last stage" + hostOf(stages - 1) + " ended", epoch);
                }
            }
        };
    }

    private void wireLocal() {
        long epoch = ++epochs;
        TransportNode node = dataPlane.node();
        for (int g = 1; g < stages; g++) {
            int s = partition.startBlock(g);
            int e = partition.endBlock(g);
            local.add(new PipelineStage(new KvCachedGpt(weights, new PagedKvCache(weights.config(), blockTokens,
                numBlocks, e - s, precision), s, e), node, g, stages, epoch));
        }
        WorkerTransport front = node.openWorker("serve-front", 0, epoch, results(epoch, null),
            t -> LOG.warn("serving data plane error", t));
        AgentRunner rx = PipelineStage.startReceiver(front, "troupe-serve-rx-0");
        TensorSender toFirst;
        try {
            for (int g = 1; g < stages; g++) {
                local.get(g - 1).connect(g + 1 < stages ? local.get(g).endpoint() : front.endpoint());
            }
            toFirst = front.connect(1, local.get(0).endpoint(), epoch);
            PipelineStage.awaitConnected(toFirst::isConnected, LOCAL_CONNECT_TIMEOUT_MS, "pipeline stage 0 to stage 1");
            for (int g = 1; g < stages; g++) {
                PipelineStage.awaitConnected(local.get(g - 1)::isConnected, LOCAL_CONNECT_TIMEOUT_MS,
                    "pipeline stage " + g + " to stage " + ((g + 1) % stages));
            }
        } catch (RuntimeException e) {
            CloseHelper.quietClose(rx);
            CloseHelper.quietClose(front);
            throw e;
        }
        wiring = new Wiring(epoch, front, rx, toFirst);
    }

    /**
     * Runs {@code r} once the first stage's thread has finished what it was given before: a failed step's
     * forward may still be reading its batch, which the scheduler reuses once it goes on.
     */
    private void afterStageZero(Runnable r) {
        try {
            stage0.execute(r);
        } catch (RuntimeException e) {               // closing: nothing goes on
            LOG.debug("not resuming: {}", e.toString());
        }
    }

    private void wireRemote() {
        long epoch;
        synchronized (this) {
            epoch = ++epochs;
        }
        long timeoutMs = links.connectTimeout().toMillis();
        int[] place = placement.place(assigned, System.nanoTime());
        assigned = place;
        for (int g = 1; g < stages; g++) {             // a stuck host would refuse the load: wait for it or a spare
            if (placement.stuck(place[g])) {
                throw new IllegalStateException("the stage host of stage " + g + " at " + links.hosts().get(place[g])
                    + " is stuck inside a step (" + placement.stepNs(place[g]) / 1_000_000 + " ms at its last"
                    + " heartbeat, step timeout " + links.stepTimeout().toMillis() + " ms) and no steady spare can take"
                    + " its stage: waiting for that step to end");
            }
        }
        // pings keep hosts loading this epoch from freeing it; a host known gone meanwhile ends the wiring now
        CompletableFuture<String> gone = new CompletableFuture<>();
        linkActor.tell(new StageHostWatch.Watch(place, epoch, false, gone));
        StageProtocol.Reply[] loaded = hostWiring.load(place, epoch, timeoutMs);
        String[] endpoints = new String[stages];
        long weightBytes = 0;
        for (int g = 1; g < stages; g++) {
            endpoints[g] = loaded[g].endpoint();
            weightBytes += loaded[g].weightBytes();
        }
        CompletableFuture<Void> probeBack = new CompletableFuture<>();
        WorkerTransport front = dataPlane.node().openWorker("serve-front-" + epoch, 0, epoch,
            results(epoch, probeBack), t -> LOG.warn("serving data plane error", t));
        AgentRunner rx = PipelineStage.startReceiver(front, "troupe-serve-rx-0");
        try {
            hostWiring.connect(place, epoch, endpoints, front.endpoint().toString(), timeoutMs);
            TensorSender toFirst = front.connect(1, TransportEndpoint.parse(endpoints[1]), epoch);
            PipelineStage.awaitConnected(() -> toFirst.isConnected() || gone.isDone(), timeoutMs,
                "this server's stream to stage 1" + hostOf(1));
            if (gone.isDone()) {
                throw new IllegalStateException(gone.join());
            }
            probe(toFirst, probeBack, gone, epoch, place);
            Wiring old;
            synchronized (this) {
                if (closed) {
                    throw new IllegalStateException("the server is closing");
                }
                old = wiring;
                wiring = new Wiring(epoch, front, rx, toFirst);
                down = null;
                framesRefused = null;
            }
            linkActor.tell(new StageHostWatch.Watch(place, epoch, true));
            if (old != null) {
                afterStageZero(old::close);            // not under a send of the first stage's thread
            }
            LOG.info("pipeline wired (epoch {}): stages 1..{} on {}, {} bytes of weights there", epoch, stages - 1,
                hostWiring.placed(place), weightBytes);
        } catch (RuntimeException e) {
            CloseHelper.quietClose(rx);
            CloseHelper.quietClose(front);
            throw e;
        }
    }

    /**
     * Sends the probe down the wired pipeline of {@code epoch} and waits a loss timeout for it to come back.
     *
     * @throws StageHostWiring.Refused naming the auth key settings, when it does not come back: some hop refuses
     *                                 the frames of the one before, as a receiver refuses frames whose tag is
     *                                 missing, wrong or unexpected
     */
    private void probe(TensorSender toFirst, CompletableFuture<Void> back, CompletableFuture<String> gone, long epoch,
                       int[] place) {
        long waitMs = links.lossTimeout().toMillis();
        long[] before = tagRefusals();
        UnsafeBuffer b = new UnsafeBuffer(ByteBuffer.allocateDirect(PROBE.length));
        b.putBytes(0, PROBE);
        long sentNs = System.nanoTime();
        toFirst.send(FrameKind.CONTROL, PROBE_STEP, TensorKey.of((int) (PROBE_STEP & TensorKey.MAX_MICROBATCH), 0, 0),
            DType.I8, b, 0, PROBE.length);
        try {
            CompletableFuture.anyOf(back, gone).get(waitMs, TimeUnit.MILLISECONDS);
            if (!back.isDone()) {
                throw new IllegalStateException(gone.join());
            }
        } catch (TimeoutException e) {
            for (int g = 1; g < stages; g++) {
                // a host that has not answered a heartbeat since the probe went may be gone: no refusal shown
                if (placement.lastAnswerNs(place[g]) - sentNs < 0) {
                    throw new IllegalStateException("a probe sent down the pipeline wired on "
                        + hostWiring.placed(place) + " (epoch " + epoch + ") did not come back within " + waitMs
                        + " ms, and the stage host of stage " + g + " at " + links.hosts().get(place[g])
                        + " has not answered a heartbeat since");
                }
            }
            long[] after = tagRefusals();
            StringBuilder here = new StringBuilder();
            for (int i = 0; i < TAG_REFUSALS.size(); i++) {
                if (after[i] > before[i]) {
                    here.append(here.length() == 0 ? "" : ", ").append(TAG_REFUSALS.get(i)).append('=')
                        .append(after[i] - before[i]);
                }
            }
            String why = "the stage hosts refuse the pipeline's frames: a probe sent down the pipeline wired on "
                + hostWiring.placed(place) + " (epoch " + epoch + ") did not come back within " + waitMs + " ms"
                + (here.length() == 0 ? "" : " (this server refused the last stage's frames: " + here + ")")
                + "; set troupe.transport.auth-key (or auth-key-file) alike on this server and every stage host"
                + " (this server has " + (links.transport().authKey() == null ? "none" : "one") + ")";
            framesRefused = why;
            LOG.warn(why);
            throw new StageHostWiring.Refused(why);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while probing the pipeline", e);
        } catch (java.util.concurrent.ExecutionException e) {
            throw new IllegalStateException(e.getCause().getMessage(), e.getCause());
        }
    }

    /** What this server's data plane refused for an authentication tag so far, by {@link #TAG_REFUSALS}. */
    private long[] tagRefusals() {
        TransportNode node = dataPlane.current();
        long[] n = new long[TAG_REFUSALS.size()];
        for (int i = 0; i < n.length && node != null; i++) {
            n[i] = node.framesDropped(TAG_REFUSALS.get(i));
        }
        return n;
    }

    /** Its data plane (a test closes the node's Aeron client as a stop past Aeron's driver timeout does). */
    DataPlane dataPlane() {
        return dataPlane;
    }

    @Override
    public void close() {
        synchronized (this) {
            closed = true;
        }
        rewiring.stop();
        stage0.shutdownNow();
        try {                                        // its sends end before their publication closes
            stage0.awaitTermination(5, TimeUnit.SECONDS);
        } catch (InterruptedException ie) {
            Thread.currentThread().interrupt();
        }
        IllegalStateException e = new IllegalStateException("the server is closing");
        pending.failAll(e);
        rewiring.failFirst(e);
        Wiring w = wiring;
        if (w != null) {
            w.close();
        }
        CloseHelper.quietCloseAll(local);
        CloseHelper.quietClose(dataPlane);
    }
}
