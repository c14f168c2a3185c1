package io.troupe.actors.serve;

import io.troupe.models.infer.InferenceWeights;
import io.troupe.models.infer.KvCachedGpt;
import io.troupe.models.infer.KvPrecision;
import io.troupe.models.infer.PagedKvCache;
import io.troupe.models.infer.Quantization;
import io.troupe.runtime.transport.TransportEndpoint;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.Address;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.PreRestart;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;

/**
 * The actor of a stage host ({@code troupe serve-stage}): it holds one pipeline stage of one server
 * at a time, from its own copy of the checkpoint. A server's {@link StageProtocol.Load} is refused when
 * the checkpoint here differs from the server's (by {@link InferenceWeights#fingerprint}); a new epoch
 * from the same server (after another stage host was lost) replaces the stage, keeping the weights and
 * the cache when they fit. Loading and connecting run off the actor's thread; a load that arrives
 * while another runs waits for it (the newest only: an older wiring's is superseded). The server's
 * {@link StageProtocol.Ping}s keep the stage; the host frees it when they stop for the loss timeout
 * or the server says {@link StageProtocol.Unload}, and then takes a stage from any server.
 *
 * <p>Each {@link StageProtocol.Pong} says how long a stage thread of this host has been inside its current
 * step ({@link PipelineStage#stepNs}), so the server can tell a stuck stage from a working one. A stage
 * closed while its thread is inside a step (stuck: closing interrupts it, and a hung call does not end)
 * still counts until that step ends, and meanwhile every load is refused: a new stage would share the
 * weights and the KV cache with a thread that may still write to them.
 */
final class StageHost extends AbstractBehavior<Object> {
    /** Where servers find it: {@code /user/stage-host}. */
    static final String NAME = "stage-host";

    private record Loaded(StageProtocol.Load load, Held held, Throwable error) {
    }

    private record Connected(StageProtocol.Connect connect, Throwable error) {
    }

    private record Tick() {
    }

    /** A load refused because a stage thread is still inside a step; {@code kept} is what the host holds. */
    private static final class StageStuck extends IllegalStateException {
        private static final long serialVersionUID = 1L;
        private final transient Held kept;

        StageStuck(String message, Held kept) {
            super(message);
            this.kept = kept;
        }
    }

    /** What the host holds for the current server. */
    private record Held(InferenceWeights weights, KvCachedGpt model, PipelineStage stage) {
    }

    private final Path checkpoint;
    private final DataPlane dataPlane;
    private final long connectTimeoutMs;
    private final long lossTimeoutMs;
    private final PipelineStage.StepEntry stepEntry;
    /**
     * Every stage this host opened whose thread may still be inside a step: the one it holds, and those it
     * closed until their thread is seen out of its step. Added to on the worker, read and pruned on the actor.
     */
    private final List<PipelineStage> opened;
    private long lastPingNs;
    /** How long a stop waits for a load or a connect under way to end, ms. */
    private static final long WORKER_STOP_MS = 5_000;
    private final ExecutorService worker = Executors.newSingleThreadExecutor(r -> PipelineStage.daemon(r,
        "troupe-stage-host"));
    private Held held;
    private long epoch = -1;
    private ActorRef<StageProtocol.Reply> server;
    private boolean loading;
    /** The stage of the load under way (while {@link #loading}). */
    private int loadingStage = -1;
    /** The checkpoint's fingerprint as last read, and when (for pings from servers this host does not serve). */
    private String fingerprint;
    private long fingerprintReadNs;
    /** The newest load that came while another was under way, or null. */
    private StageProtocol.Load queued;

    /**
     * A stage host reading stages from {@code checkpoint}, their frames on {@code dataPlane}'s node, calling
     * {@code stepEntry} as each step of its stages begins ({@link PipelineStage.StepEntry#NONE} but in tests).
     * The stages it opened are known across restarts of the actor, so a stuck one still counts.
     */
    static Behavior<Object> create(Path checkpoint, DataPlane dataPlane, long connectTimeoutMs, long lossTimeoutMs,
                                   PipelineStage.StepEntry stepEntry) {
        List<PipelineStage> opened = new CopyOnWriteArrayList<>();
        return Behaviors.setup(ctx -> Behaviors.withTimers(timers -> {
            timers.startTimerWithFixedDelay(new Tick(), java.time.Duration.ofMillis(Math.max(50, lossTimeoutMs / 4)));
            return new StageHost(ctx, checkpoint, dataPlane, connectTimeoutMs, lossTimeoutMs, stepEntry, opened);
        }));
    }

    private StageHost(ActorContext<Object> ctx, Path checkpoint, DataPlane dataPlane, long connectTimeoutMs,
                      long lossTimeoutMs, PipelineStage.StepEntry stepEntry, List<PipelineStage> opened) {
        super(ctx);
        this.opened = opened;
        this.checkpoint = checkpoint;
        this.dataPlane = dataPlane;
        this.connectTimeoutMs = connectTimeoutMs;
        this.lossTimeoutMs = lossTimeoutMs;
        this.stepEntry = stepEntry;
    }

    @Override
    public Receive<Object> createReceive() {
        return newReceiveBuilder()
            .onMessage(StageProtocol.Load.class, this::onLoad)
            .onMessage(Loaded.class, this::onLoaded)
            .onMessage(StageProtocol.Connect.class, this::onConnect)
            .onMessage(Connected.class, this::onConnected)
            .onMessage(StageProtocol.Unload.class, m -> free(m.epoch(), "the server unloaded it", false))
            .onMessage(StageProtocol.Ping.class, this::onPing)
            .onMessage(Tick.class, m -> onTick())
            .onSignal(PostStop.class, s -> stopped())
            .onSignal(PreRestart.class, s -> stopped())
            .build();
    }

    private static Address addressOf(ActorRef<?> ref) {
        return ref.path().address();
    }

    /** Whether this host holds a stage for a server other than the one {@code from} belongs to. */
    private boolean servesAnother(ActorRef<?> from) {
        return server != null && !addressOf(server).equals(addressOf(from));
    }

    private Behavior<Object> onLoad(StageProtocol.Load m) {
        if (servesAnother(m.replyTo())) {
            m.replyTo().tell(new StageProtocol.Reply(m.stage(), m.epoch(), null, 0, "this stage host serves stage "
                + heldStage() + " of the server at " + addressOf(server) + " (epoch " + epoch + "); stop that server"
                + " first"));
            return this;
        }
        if (loading) {                        // a newer wiring: it starts once the load under way ends
            m.replyTo().tell(new StageProtocol.Reply(m.stage(), m.epoch(), null, 0, null));
            queued = m;
            return this;
        }
        return startLoad(m);
    }

    private Behavior<Object> startLoad(StageProtocol.Load m) {
        loading = true;
        loadingStage = m.stage();
        // at once, so a server learns this host is there without waiting for the weights to load
        m.replyTo().tell(new StageProtocol.Reply(m.stage(), m.epoch(), null, 0, null));
        server = m.replyTo();
        lastPingNs = System.nanoTime();
        Held previous = held;
        held = null;
        epoch = m.epoch();
        getContext().pipeToSelf(CompletableFuture.supplyAsync(() -> load(m, previous), worker),
            (h, err) -> new Loaded(m, h, err));
        return this;
    }

    private int heldStage() {
        return held == null || held.stage() == null ? -1 : held.stage().stage();
    }

    /** On the worker: the stage of {@code m}, reusing what {@code previous} holds where it fits. */
    private Held load(StageProtocol.Load m, Held previous) {
        if (previous != null && previous.stage() != null) {
            previous.stage().close();
        }
        String stuck = stuckStep(System.nanoTime());
        if (stuck != null) {
            throw new StageStuck(stuck + "; this host takes no stage until that step ends",
                previous == null ? null : new Held(previous.weights(), previous.model(), null));
        }
        Quantization q = Quantization.parse(m.quantization());
        KvPrecision precision = KvPrecision.parse(m.kvPrecision());
        InferenceWeights w = previous == null ? null : previous.weights();
        if (w == null || w.firstBlock() != m.firstBlock() || w.endBlock() != m.endBlock() || w.quantization() != q
            || !w.fingerprint().equals(m.fingerprint())) {
            w = InferenceWeights.load(checkpoint, q, m.firstBlock(), m.endBlock());
        }
        if (!w.fingerprint().equals(m.fingerprint())) {
            throw new IllegalArgumentException(differs(w.fingerprint(), m.fingerprint()));
        }
        KvCachedGpt model = previous == null ? null : previous.model();
        PagedKvCache c = model == null ? null : model.cache();
        if (model == null || model.weights() != w || c.numBlocks() != m.numBlocks()
            || c.blockSize() != m.blockTokens() || c.precision() != precision) {
            model = new KvCachedGpt(w, new PagedKvCache(w.config(), m.blockTokens(), m.numBlocks(),
                m.endBlock() - m.firstBlock(), precision), m.firstBlock(), m.endBlock());
        }
        PipelineStage stage = new PipelineStage(model, dataPlane.node(), m.stage(), m.stages(), m.epoch(), stepEntry);
        opened.add(stage);
        return new Held(w, model, stage);
    }

    /**
     * How long the stage thread of this host that has been inside its current step the longest has been in it
     * at {@code nowNs}, ns (0: none is inside a step); forgets closed stages whose thread is out of its step.
     */
    private long longestStepNs(long nowNs) {
        long longest = 0;
        for (PipelineStage s : opened) {
            long ns = s.stepNs(nowNs);
            if (ns == 0 && s.isClosed()) {
                opened.remove(s);
            }
            longest = Math.max(longest, ns);
        }
        return longest;
    }

    /** Why a load must wait: the thread of a closed stage is still inside a step (at {@code nowNs}); or null. */
    private String stuckStep(long nowNs) {
        for (PipelineStage s : opened) {
            long ns = s.stepNs(nowNs);
            if (ns > 0 && s.isClosed()) {
                return "the thread of its stage " + s.stage() + " (epoch " + s.epoch() + ") is still inside step "
                    + s.currentStep() + " after " + ns / 1_000_000 + " ms";
            }
            if (ns == 0 && s.isClosed()) {
                opened.remove(s);
            }
        }
        return null;
    }

    private Behavior<Object> onLoaded(Loaded m) {
        loading = false;
        if (m.error() != null && cause(m.error()) instanceof StageStuck s) {
            held = s.kept;                    // the weights and the cache stay for the load once the step ends
        }
        StageProtocol.Load l = m.load();
        if (queued != null) {                 // superseded: its server waits for the newer wiring's answer
            StageProtocol.Load next = queued;
            queued = null;
            if (m.error() == null) {
                m.held().stage().close();
                held = new Held(m.held().weights(), m.held().model(), null);
            }
            return startLoad(next);
        }
        if (m.error() != null) {
            Throwable e = cause(m.error());
            getContext().getLog().warn("cannot load stage {} for {}: {}", l.stage(), addressOf(l.replyTo()),
                e.toString());
            l.replyTo().tell(new StageProtocol.Reply(l.stage(), l.epoch(), null, 0, e.getMessage()));
            return this;
        }
        if (l.epoch() != epoch) {                  // a newer load came meanwhile (it was refused as "loading")
            m.held().stage().close();
            return this;
        }
        held = m.held();
        l.replyTo().tell(new StageProtocol.Reply(l.stage(), l.epoch(), held.stage().endpoint().toString(),
            held.weights().weightBytes(), null));
        return this;
    }

    private Behavior<Object> onConnect(StageProtocol.Connect m) {
        if (held == null || held.stage() == null || m.epoch() != epoch || held.stage().stage() != m.stage()) {
            m.replyTo().tell(new StageProtocol.Reply(m.stage(), m.epoch(), null, 0, "no stage " + m.stage()
                + " of epoch " + m.epoch() + " is loaded here (epoch " + epoch + ", stage " + heldStage() + ")"));
            return this;
        }
        PipelineStage stage = held.stage();
        lastPingNs = System.nanoTime();
        getContext().pipeToSelf(CompletableFuture.runAsync(() -> connect(stage, m.next()), worker),
            (v, err) -> new Connected(m, err));
        return this;
    }

    private void connect(PipelineStage stage, String next) {
        stage.connect(TransportEndpoint.parse(next));
        PipelineStage.awaitConnected(stage::isConnected, connectTimeoutMs, "stage " + stage.stage() + " to " + next);
    }

    /** What went wrong in work run off the actor's thread (null: nothing). */
    private static Throwable cause(Throwable error) {
        return error instanceof java.util.concurrent.CompletionException ce && ce.getCause() != null
            ? ce.getCause() : error;
    }

    private Behavior<Object> onConnected(Connected m) {
        StageProtocol.Connect c = m.connect();
        Throwable e = cause(m.error());
        c.replyTo().tell(new StageProtocol.Reply(c.stage(), c.epoch(), e == null ? "connected" : null, 0,
            e == null ? null : e.getMessage()));
        return this;
    }

    private Behavior<Object> onPing(StageProtocol.Ping m) {
        boolean ours = server != null && m.epoch() == epoch;
        if (ours) {
            lastPingNs = System.nanoTime();
        }
        m.replyTo().tell(new StageProtocol.Pong(stageOf(m), m.epoch(), m.slot(), refusal(m),
            longestStepNs(System.nanoTime()), m.seq()));
        return this;
    }

    /**
     * The stage this host holds, is loading or will load next for the epoch of {@code m}, when {@code m} comes
     * from the server it serves; else -1. Every message of that server before {@code m} was taken: a server that
     * sees -1 after a load or a connect it sent knows this host will never answer it (the host that had it is
     * gone, restarted on its port, or dropped it).
     */
    private int stageOf(StageProtocol.Ping m) {
        if (server == null || !addressOf(server).equals(addressOf(m.replyTo()))) {
            return -1;
        }
        if (queued != null && queued.epoch() == m.epoch()) {
            return queued.stage();
        }
        if (m.epoch() != epoch) {
            return -1;
        }
        return loading ? loadingStage : heldStage();
    }

    /** Why a load from the server that sent {@code m} would be refused now, or null. */
    private String refusal(StageProtocol.Ping m) {
        if (servesAnother(m.replyTo())) {
            return "it serves stage " + heldStage() + " of the server at " + addressOf(server);
        }
        if (m.fingerprint() == null || held != null && held.stage() != null && server != null) {
            return null;                      // the stage it holds for this server was loaded from its checkpoint
        }
        String here = checkpointFingerprint();
        return here.equals(m.fingerprint()) ? null : differs(here, m.fingerprint());
    }

    /** Why this host refuses a server's stage: its checkpoint, whose fingerprint is {@code here}, differs. */
    private String differs(String here, String server) {
        return "its checkpoint " + checkpoint + " is '" + here + "', the server's is '" + server + "'";
    }

    /** The fingerprint of the checkpoint a load would read now, from its manifest, re-read once a loss timeout. */
    private String checkpointFingerprint() {
        long now = System.nanoTime();
        if (fingerprint == null || now - fingerprintReadNs > lossTimeoutMs * 1_000_000L) {
            try {
                fingerprint = InferenceWeights.fingerprintOf(checkpoint);
            } catch (RuntimeException e) {
                fingerprint = "unreadable: " + e.getMessage();
            }
            fingerprintReadNs = now;
        }
        return fingerprint;
    }

    private Behavior<Object> onTick() {
        if (server != null && !loading && System.nanoTime() - lastPingNs > lossTimeoutMs * 1_000_000L) {
            return free(epoch, "its server at " + addressOf(server) + " was silent for " + lossTimeoutMs + " ms", true);
        }
        return this;
    }

    /** Frees the stage of {@code freedEpoch}, saying {@code why}: as a warning when its server was {@code lost}. */
    private Behavior<Object> free(long freedEpoch, String why, boolean lost) {
        if (freedEpoch != epoch || server == null) {
            return this;
        }
        if (lost) {
            getContext().getLog().warn("freeing stage {} of epoch {}: {}", heldStage(), epoch, why);
        } else {
            getContext().getLog().info("freeing stage {} of epoch {}: {}", heldStage(), epoch, why);
        }
        server = null;
        closeStage();
        return this;
    }

    /**
     * The actor stops (its system terminates) or restarts: the worker is stopped first (a load or a connect
     * under way is interrupted), then every stage it opened and nothing closed yet is closed here, in order:
     * the one held, one a load opened whose answer will not come, one whose close the worker had not run.
     */
    private Behavior<Object> stopped() {
        worker.shutdownNow();
        try {
            if (!worker.awaitTermination(WORKER_STOP_MS, TimeUnit.MILLISECONDS)) {
                getContext().getLog().warn("the stage host's worker is still busy {} ms after it was stopped;"
                    + " closing its stages regardless", WORKER_STOP_MS);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        held = null;
        for (PipelineStage s : opened) {
            if (!s.isClosed()) {
                s.close();
            }
        }
        return this;
    }

    private void closeStage() {
        Held h = held;
        if (h != null && h.stage() != null) {
            held = new Held(h.weights(), h.model(), null);     // weights and cache kept for the next load
            worker.execute(h.stage()::close);
        }
    }
}
