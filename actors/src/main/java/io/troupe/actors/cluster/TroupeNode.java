package io.troupe.actors.cluster;

import com.typesafe.config.Config;
import io.troupe.actors.api.JobEvent;
import io.troupe.actors.engine.StageModuleFactories;
import io.troupe.runtime.transport.TransportNode;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.cluster.typed.ClusterSingleton;
import org.apache.pekko.cluster.typed.ClusterSingletonSettings;
import org.apache.pekko.cluster.typed.SingletonActor;

/**
 * One node: a Pekko cluster member, a data-plane node (media driver), its workers, and a proxy to
 * the coordinator singleton (which runs on the oldest node with the coordinator role), and a job
 * gateway ({@code /user/jobs}) through which clients submit. Several nodes in one JVM share one
 * data-plane node: every busy thread costs a core. Settings with no roles and a seed make a client
 * instead: it submits through a seed's gateway without joining the cluster.
 */
public final class TroupeNode implements AutoCloseable {
    private final ActorSystem<Void> system;
    private final TransportNode transport;
    private final boolean ownsTransport;
    /** Where jobs go (the first) and cancellations go (all): this node's gateway, or the seeds'. */
    private final List<ActorRef<CoordinatorActor.Command>> gateways;
    private final String instanceId;
    /** A client (not a member): its jobs go to the first seed whose gateway answers. */
    private final boolean client;
    /** The management endpoint's base URL with its bound port; null when it is off. */
    private final String managementUrl;
    /** A client: the gateway that answered {@link #connect(Duration)}, where its jobs go; null before. */
    private volatile ActorRef<CoordinatorActor.Command> answered;

    /** How long a client waits for one seed's job gateway to answer before it tries the next seed. */
    static final Duration SEED_ANSWER_WAIT = Duration.ofSeconds(5);
    /**
     * How long a client keeps trying its seeds (several: round after round; one: the whole time) before
     * the job fails unsent, unless {@link #connect(Duration)} was given another deadline.
     */
    public static final Duration SEEDS_DEADLINE = Duration.ofSeconds(60);

    private TroupeNode(ActorSystem<Void> system, TransportNode transport, boolean ownsTransport,
                       List<ActorRef<CoordinatorActor.Command>> gateways, boolean client, String managementUrl) {
        this.system = system;
        this.client = client;
        this.managementUrl = managementUrl;
        this.instanceId = system.settings().config().getString(ProtocolVersionCheck.INSTANCE_KEY);
        this.transport = transport;
        this.ownsTransport = ownsTransport;
        this.gateways = List.copyOf(gateways);
    }

    /**
     * Starts a node.
     *
     * @param sharedTransport a data-plane node to share (embedded clusters), or null to launch one. A
     *                        node without the worker role (a coordinator or a client that submits
     *                        jobs) moves no tensors: it launches none, so it adds no media driver
     *                        threads to the machine
     */
    public static TroupeNode start(NodeSettings settings, Config base, TransportNode sharedTransport) {
        return start(settings, base, sharedTransport, java.util.function.UnaryOperator.identity());
    }

    /**
     * As {@link #start(NodeSettings, Config, TransportNode)}, this node's workers reading a job's data at
     * {@code dataView} applied to the job's data path: a test gives nodes of one JVM different files at the path a job
     * names, as two hosts' copies can differ.
     */
    static TroupeNode start(NodeSettings settings, Config base, TransportNode sharedTransport,
                            java.util.function.UnaryOperator<java.nio.file.Path> dataView) {
        if (settings.roles().isEmpty() && !settings.seeds().isEmpty()) {
            return startClient(settings, base);
        }
        boolean hostsWorkers = settings.roles().contains("worker");
        TransportNode transport = sharedTransport != null ? sharedTransport
            : hostsWorkers ? TransportNode.launch(TransportConfig.from(base), Throwable::printStackTrace) : null;
        CompletableFuture<ActorRef<CoordinatorActor.Command>> proxy = new CompletableFuture<>();
        Behavior<Void> guardian = Behaviors.setup(ctx -> {
            if (hostsWorkers) {
                for (int i = 0; i < settings.workers(); i++) {
                    ctx.spawn(WorkerActor.create(transport, i, settings.threadsPerWorker(),
                        java.util.function.UnaryOperator.identity(),
                        io.troupe.actors.cluster.snapshot.DirectMemory::availableForSnapshotsBytes, dataView),
                        "worker-" + i);
                }
            }
            SingletonActor<CoordinatorActor.Command> singleton =
                SingletonActor.of(CoordinatorActor.create(), "coordinator")
                    .withSettings(ClusterSingletonSettings.create(ctx.getSystem()).withRole("coordinator"));
            ActorRef<CoordinatorActor.Command> coordinator = ClusterSingleton.get(ctx.getSystem()).init(singleton);
            if (ctx.getSystem().settings().config().getBoolean(DeadMemberProbe.ENABLED_KEY)) {
                ctx.spawn(DeadMemberProbe.create(), "dead-member-probe");
            }
            ActorRef<Object> gateway = ctx.spawn(gateway(coordinator), GATEWAY);
            proxy.complete(gateway.narrow());
            return Behaviors.empty();
        });
        ActorSystem<Void> system;
        ManagementSettings management = ManagementSettings.from(base);
        try {
            system = ActorSystem.create(guardian, settings.systemName(),
                management.pekkoOverlay().withFallback(settings.pekkoConfig(base)));
        } catch (RuntimeException e) {
            if (sharedTransport == null && transport != null) {
                transport.close();
            }
            throw e;
        }
        String managementUrl;
        try {
            managementUrl = ClusterManagement.start(system, management);
        } catch (RuntimeException e) {
            system.terminate();
            throw e;
        }
        if (settings.seeds().isEmpty() && !management.bootstrapsOnKubernetes()) {
            // No seeds: this node starts a new cluster by joining itself.
            Cluster c = Cluster.get(system);
            c.manager().tell(new org.apache.pekko.cluster.typed.Join(c.selfMember().address()));
        }
        try {
            return new TroupeNode(system, transport, sharedTransport == null, List.of(proxy.get(30, TimeUnit.SECONDS)),
                false, managementUrl);
        } catch (Exception e) {
            system.terminate();
            throw new IllegalStateException("node did not start: " + e.getMessage(), e);
        }
    }

    /** Name of every member's job gateway ({@code /user/jobs}): where clients send their jobs. */
    static final String GATEWAY = "jobs";

    /**
     * Passes jobs and cancellations (from clients and from this node) to the coordinator singleton;
     * nothing else. A job naming a stage-module factory off the allow-list is answered with its
     * refusal here, before any work. The coordinator sends a job's events straight to its submitter
     * (the job record names it, so a new coordinator incarnation reaches it too, whichever node the
     * submitter talked to) and to an observer on this node, which publishes them on this node's
     * event stream (where {@code io.troupe.actors.metrics} counts them).
     */
    private static Behavior<Object> gateway(ActorRef<CoordinatorActor.Command> coordinator) {
        return Behaviors.setup(ctx -> {
            long[] jobs = {0};
            List<String> allowedModules = ctx.getSystem().settings().config()
                .getStringList(StageModuleFactories.ALLOW_LIST_KEY);
            return Behaviors.receive((c, m) -> {
                if (m instanceof CoordinatorActor.SubmitJob s && refusedModule(s, allowedModules)) {
                    return Behaviors.same();
                } else if (m instanceof CoordinatorActor.SubmitJob s) {
                    ActorRef<JobEvent> observer = ctx.spawn(observer(), "job-" + jobs[0]++);
                    coordinator.tell(new CoordinatorActor.SubmitJob(s.job(), observer, s.replyTo()));
                } else if (m instanceof CoordinatorActor.CancelJob x) {
                    coordinator.tell(x);
                } else {
                    ctx.getLog().warn("job gateway: ignored a {} (only jobs and cancellations pass)",
                        m.getClass().getSimpleName());
                }
                return Behaviors.same();
            });
        });
    }

    /**
     * Answers a job naming a stage-module factory off {@code troupe.cluster.allowed-stage-modules}
     * with its refusal (jobs from other nodes were already refused as they arrived).
     */
    private static boolean refusedModule(CoordinatorActor.SubmitJob s, List<String> allowed) {
        try {
            StageModuleFactories.checkAllowed(s.job().moduleFactory(), allowed);
            return false;
        } catch (IllegalArgumentException e) {
            s.replyTo().tell(new JobEvent.Failed("job refused before any work: " + e.getMessage(), 0, 0));
            return true;
        }
    }

    /**
     * Publishes a job's events on this node's event stream, up to its end. The observer of a repeated submission
     * (the submitter sends it again until the job has started) is told so and stops, publishing nothing:
     * the first submission's observer publishes the job's events.
     */
    private static Behavior<JobEvent> observer() {
        return Behaviors.receive((ctx, e) -> {
            if (e instanceof JobEvent.Accepted a && a.repeat()) {
                return Behaviors.stopped();
            }
            ctx.getSystem().eventStream().tell(new org.apache.pekko.actor.typed.eventstream.EventStream.Publish<>(e));
            return e instanceof JobEvent.Finished || e instanceof JobEvent.Failed ? Behaviors.stopped()
                : Behaviors.same();
        });
    }

    /**
     * A client: an actor system that talks to the cluster without joining it (Artery only, no
     * membership), so it is never a member the split-brain resolver counts or downs, and its loss
     * fails at most its own watch. Jobs go to the job gateway of the first seed that answers (each
     * tried in turn for {@link #SEED_ANSWER_WAIT}, round after round up to {@link #SEEDS_DEADLINE};
     * a single seed is waited for the whole deadline), and their repeats until the coordinator answers, as
     * cancellations, to the gateways of every seed (any of them may be gone). The coordinator sends events straight
     * to the client's listener, from whichever node hosts it now, so the watch outlives the node
     * the client talked to; {@code hostname} must be one the nodes can reach.
     */
    private static TroupeNode startClient(NodeSettings settings, Config base) {
        Config config = com.typesafe.config.ConfigFactory.parseString(String.join("\n", "pekko.actor.provider = remote",
                "pekko.remote.warn-about-direct-use = off", "pekko.remote.warn-unsafe-watch-outside-cluster = off"))
            .withFallback(settings.pekkoConfig(base));
        ActorSystem<Void> system = ActorSystem.create(Behaviors.empty(), settings.systemName(), config);
        List<ActorRef<CoordinatorActor.Command>> gateways = new java.util.ArrayList<>();
        for (String seed : settings.seeds()) {
            gateways.add(org.apache.pekko.actor.typed.ActorRefResolver.get(system)
                .resolveActorRef("pekko://" + settings.systemName() + "@" + seed + "/user/" + GATEWAY));
        }
        return new TroupeNode(system, null, false, gateways, true, null);
    }

    /** host:port of this node's control plane (the port actually bound when 0 was asked). */
    public String hostPort() {
        var a = system.address();
        return a.getHost().get() + ":" + a.getPort().get();
    }

    /**
     * Base URL of this node's management endpoint ({@link ManagementSettings}) with the port it bound (the
     * one the kernel picked when {@code troupe.management.port} is 0); null when the endpoint is off.
     */
    public String managementUrl() {
        return managementUrl;
    }

    public ActorSystem<Void> system() {
        return system;
    }

    /** What this node refused from the network so far, by reason. */
    public RefusedInputs refusedInputs() {
        return RefusedInputs.forInstance(instanceId);
    }

    /** This node's data plane; null on a node without the worker role (it moves no tensors). */
    public TransportNode transport() {
        return transport;
    }

    /**
     * Submits a job to the coordinator; {@code events} gets the job's events in order, on an actor
     * thread, from its {@link JobEvent.Accepted} up to and including its {@link JobEvent.Finished} or
     * {@link JobEvent.Failed}. The submission is sent again every {@link #SUBMIT_RESEND}, to the gateway of
     * every seed, until the job has started (any event but {@link JobEvent.Accepted}) or {@link #SUBMIT_GIVE_UP}
     * passed: a copy lost on the way (the gateway's node stopping, a coordinator hand-over) does not leave the job
     * unsent, nor does a job taken by a coordinator lost before any worker held it, and the coordinator takes a
     * repeat once (it answers it, {@code repeat} true, and starts nothing). {@code events} gets one
     * {@code Accepted}, the first. From a client, once the job started, the submission is sent again every
     * {@link #SUBMIT_WATCH} while it runs: should every node that ran it be lost (the whole cluster stopped or
     * restarted), a cluster started again at the seeds carries the job on from its record, counted as a fault, and
     * {@code events} goes on.
     *
     * @return cancels the job when run (the coordinator ends it as {@link JobEvent.Failed}, its
     *         reason starting with {@code cancelled}); nothing when the job has already ended
     */
    public Runnable submit(JobRequest job, Consumer<JobEvent> events) {
        return submit(job, events, SEED_ANSWER_WAIT, SEEDS_DEADLINE);
    }

    /**
     * A client: waits up to {@code deadline} for a seed's job gateway to answer, and keeps the first
     * that did as where {@link #submit(JobRequest, Consumer)} sends jobs; nothing is sent. Several
     * seeds are tried in turn, {@link #SEED_ANSWER_WAIT} each, round after round; a single seed, the
     * cluster's only known door, for the whole deadline (a cold client's first association with a
     * loaded node can take several seconds). Blocks the caller; a member returns true at once.
     *
     * @return whether a gateway answered; false: none within {@code deadline} (a wrong address, or no
     *         node up there)
     */
    public boolean connect(Duration deadline) {
        if (!client) {
            return true;
        }
        ActorRef<CoordinatorActor.Command> g = answeringGateway(gateways.size() > 1 ? SEED_ANSWER_WAIT : deadline,
            deadline);
        if (g != null) {
            answered = g;
        }
        return g != null;
    }

    /** host:port of every seed a client contacts (a member: its own gateway's), in order, comma separated. */
    public String seeds() {
        return seedsOf(gateways);
    }

    /**
     * As {@link #submit(JobRequest, Consumer)}; a client that has not {@linkplain #connect(Duration)
     * connected} tries its seeds' gateways in turn, {@code waitEach} for each (a single seed: for the
     * whole deadline), round after round until {@code deadline}, and sends the job to the first that
     * answers, then again to every seed until the coordinator answers ({@link #submitter}); none answering
     * fails the job unsent, naming every seed.
     */
    Runnable submit(JobRequest job, Consumer<JobEvent> events, Duration waitEach, Duration deadline) {
        java.util.concurrent.atomic.AtomicBoolean heard = new java.util.concurrent.atomic.AtomicBoolean();
        java.util.concurrent.atomic.AtomicLong heardNs = new java.util.concurrent.atomic.AtomicLong(System.nanoTime());
        ActorRef<JobEvent> listener = system.systemActorOf(listener(events, heard, heardNs),
            "job-listener-" + System.nanoTime(), org.apache.pekko.actor.typed.Props.empty());
        ActorRef<CoordinatorActor.Command> gateway = !client ? gateways.get(0)
            : answered != null ? answered
            : answeringGateway(gateways.size() > 1 ? waitEach : deadline, deadline);
        if (gateway == null) {
            listener.tell(new JobEvent.Failed("no seed's job gateway answered within " + deadline.toSeconds()
                + " s (" + (gateways.size() > 1 ? waitEach : deadline).toMillis() + " ms per try): tried "
                + seedsOf(gateways) + "; the job was not submitted", 0, 0));
            return () -> {
            };
        }
        system.systemActorOf(submitter(new CoordinatorActor.SubmitJob(job, listener), gateway, gateways, heard::get,
            SUBMIT_RESEND, SUBMIT_GIVE_UP, client ? new Watch(SUBMIT_WATCH, WATCH_SILENCE, heardNs::get) : null),
            "job-submit-" + System.nanoTime(),
            org.apache.pekko.actor.typed.Props.empty());
        java.util.concurrent.atomic.AtomicBoolean cancelled = new java.util.concurrent.atomic.AtomicBoolean();
        return () -> {
            if (cancelled.compareAndSet(false, true)) {
                system.systemActorOf(canceller(listener, gateways, CANCEL_RESEND, CANCEL_GIVE_UP),
                    "job-cancel-" + System.nanoTime(), org.apache.pekko.actor.typed.Props.empty());
            }
        };
    }

    /**
     * A job's listener: passes each event to {@code events} (of the coordinator's {@link JobEvent.Accepted} answers,
     * one to the first submission and one to each repeat, the first only), sets {@code started} at the first event
     * that is not one (the job has started, or ended), and stops after the job's end. {@code heardNs} takes the time
     * ({@link System#nanoTime()}) of every answer from the cluster, the repeats' {@code Accepted} included: the
     * submitter's watch learns from it whether the cluster still answers.
     */
    static Behavior<JobEvent> listener(Consumer<JobEvent> events, java.util.concurrent.atomic.AtomicBoolean started,
                                       java.util.concurrent.atomic.AtomicLong heardNs) {
        boolean[] accepted = {false};
        return Behaviors.receive((ctx, e) -> {
            heardNs.set(System.nanoTime());
            if (e instanceof JobEvent.Accepted) {
                if (accepted[0]) {
                    return Behaviors.same();
                }
                accepted[0] = true;
            } else {
                started.set(true);
            }
            events.accept(e);
            return e instanceof JobEvent.Finished || e instanceof JobEvent.Failed ? Behaviors.stopped()
                : Behaviors.same();
        });
    }

    /** How often a submission is sent again until the coordinator answers it, and for how long at most. */
    static final Duration SUBMIT_RESEND = Duration.ofSeconds(1);
    static final Duration SUBMIT_GIVE_UP = Duration.ofMinutes(5);
    /**
     * How often a started job's submission is sent again while it runs (its watch): the coordinator answers the repeat,
     * and a cluster started again, every node of the job's lost, carries the job on from its record at the first
     * repeat that reaches it ({@code IdlePhase}).
     */
    static final Duration SUBMIT_WATCH = Duration.ofSeconds(5);
    /** How long the watch's repeats may go unanswered before the client says the cluster is silent. */
    static final Duration WATCH_SILENCE = Duration.ofSeconds(30);

    /**
     * A started job's watch: its submission sent again every {@code every} for as long as it runs; when nothing came
     * from the cluster ({@code heardNs}, the listener's last answer) for {@code silence}, that is logged once, and so
     * is the first answer after it.
     */
    record Watch(Duration every, Duration silence, java.util.function.LongSupplier heardNs) {
    }

    /**
     * Sends {@code submission} to {@code first} (the gateway chosen for it), then again to the gateway of every seed
     * every {@code resend} ({@link #SUBMIT_RESEND}) until the job started ({@code heard}: the listener got an event
     * other than {@link JobEvent.Accepted}), the listener stopped, or {@code giveUpAfter} ({@link #SUBMIT_GIVE_UP})
     * passed; then it stops. A submission sent once is lost with the gateway's node stopping as it passes, a
     * coordinator hand-over, or a dropped remote message, and its submitter would wait for nothing; so is a job a
     * coordinator took ({@code Accepted}) and lost in a hand-over before any worker held it, which no new incarnation
     * can adopt: a repeat then starts it there. The coordinator answers a repeat of the job it runs, or has just
     * ended, without starting it again ({@link JobEvent.Accepted}, or the job's end). The repeats go by actor
     * selection, as the {@linkplain #canceller canceller's} do, so they reach a seed started again at its address.
     * With a {@code watch} (null: none, it stops once the job started), a started job's submission goes on being sent
     * every {@link Watch#every} until the job ends (the listener stops): should every node that ran the job be lost, a
     * cluster started again at the seeds takes the job over from its record at the first repeat it receives.
     */
    static Behavior<Object> submitter(CoordinatorActor.SubmitJob submission, ActorRef<CoordinatorActor.Command> first,
                                      List<ActorRef<CoordinatorActor.Command>> gateways,
                                      java.util.function.BooleanSupplier heard, Duration resend, Duration giveUpAfter,
                                      Watch watch) {
        return resender(submission, first, gateways, submission.replyTo(), heard, resend, giveUpAfter,
            "the job submission", "the job starts", watch);
    }

    /**
     * Sends {@code message} to {@code first} (null: to the gateway of every seed), then to the gateway of every seed
     * by actor selection every {@code resend} until {@code done}, {@code listener} stopped, or {@code giveUpAfter}
     * passed; then it stops, unless a {@code watch} (null: none) keeps it sending every {@link Watch#every} once
     * {@code done}, until {@code listener} stops. {@code what} and {@code until} name the message and its effect in
     * the log.
     */
    private static Behavior<Object> resender(CoordinatorActor.Command message, ActorRef<CoordinatorActor.Command> first,
                                             List<ActorRef<CoordinatorActor.Command>> gateways,
                                             ActorRef<JobEvent> listener, java.util.function.BooleanSupplier done,
                                             Duration resend, Duration giveUpAfter, String what, String until,
                                             Watch watch) {
        return Behaviors.setup(ctx -> Behaviors.withTimers(timers -> {
            ctx.watch(listener);
            long giveUp = System.nanoTime() + giveUpAfter.toNanos();
            int[] sent = {1};
            long[] nextWatchNs = {System.nanoTime()};   // nanoTime's origin is arbitrary: never compared with 0
            boolean[] silent = {false};
            Runnable toEvery = () -> {
                for (ActorRef<CoordinatorActor.Command> g : gateways) {
                    ctx.getSystem().classicSystem().actorSelection(g.path()).tell(message,
                        org.apache.pekko.actor.ActorRef.noSender());
                }
            };
            if (first != null) {
                first.tell(message);
            } else {
                toEvery.run();
            }
            timers.startTimerWithFixedDelay(new Resend(), resend);
            return Behaviors.receive(Object.class)
                .onMessage(Resend.class, r -> {
                    if (done.getAsBoolean()) {
                        if (watch == null) {
                            return Behaviors.stopped();
                        }
                        watched(ctx, watch, gateways, toEvery, nextWatchNs, silent);
                        return Behaviors.same();
                    }
                    if (System.nanoTime() > giveUp) {
                        ctx.getLog().warn("troupe: {} sent {} times to {} over {} s without {}; no longer sending it",
                            what, sent[0], seedsOf(gateways), giveUpAfter.toSeconds(), until);
                        return Behaviors.stopped();
                    }
                    if (sent[0] == 1) {
                        ctx.getLog().info("troupe: sending {} again to {} every {} ms until {}", what,
                            seedsOf(gateways), resend.toMillis(), until);
                    }
                    toEvery.run();
                    sent[0]++;
                    return Behaviors.same();
                })
                .onSignal(org.apache.pekko.actor.typed.Terminated.class, t -> Behaviors.stopped())
                .build();
        }));
    }

    /**
     * One tick of a started job's watch: the submission sent again when {@link Watch#every} has passed since the last
     * time, and the cluster's silence (nothing heard for {@link Watch#silence}) or its first answer after one logged.
     */
    private static void watched(org.apache.pekko.actor.typed.javadsl.ActorContext<Object> ctx, Watch watch,
                                List<ActorRef<CoordinatorActor.Command>> gateways, Runnable toEvery,
                                long[] nextWatchNs, boolean[] silent) {
        long now = System.nanoTime();
        if (now - nextWatchNs[0] >= 0) {
            toEvery.run();
            nextWatchNs[0] = now + watch.every().toNanos();
        }
        long quietNs = now - watch.heardNs().getAsLong();
        if (!silent[0] && quietNs > watch.silence().toNanos()) {
            silent[0] = true;
            ctx.getLog().warn("troupe: no answer from the cluster at {} for {} s; still sending the job's submission"
                + " every {} s: a cluster started again there carries the job on from its record", seedsOf(gateways),
                quietNs / 1_000_000_000L, watch.every().toSeconds());
        } else if (silent[0] && quietNs < watch.silence().toNanos()) {
            silent[0] = false;
            ctx.getLog().warn("troupe: the cluster at {} answers again", seedsOf(gateways));
        }
    }

    /** How often a cancellation is sent again until its job ends, and for how long at most. */
    static final Duration CANCEL_RESEND = Duration.ofSeconds(1);
    static final Duration CANCEL_GIVE_UP = Duration.ofMinutes(5);

    private record Resend() {
    }

    /**
     * Sends the cancellation of the job {@code listener} follows to the gateway of every seed, again every
     * {@code resend} ({@link #CANCEL_RESEND}) until the job ends (the listener stops at the job's end) or
     * {@code giveUpAfter} ({@link #CANCEL_GIVE_UP}) passed; then it stops. A coordinator takes a cancellation once
     * (a job already stopped ignores it); a cancellation sent once is lost when no named seed is up to take it (a
     * seed restarting and not yet up, the client's only one). It goes by actor selection, as the serving watch's
     * messages to stage hosts do: a seed that stopped cleanly is quarantined by this system's link, which drops what
     * is sent to that address by reference, also to the node started there again, while a selection passes and
     * opens a handshake with the new node.
     */
    static Behavior<Object> canceller(ActorRef<JobEvent> listener, List<ActorRef<CoordinatorActor.Command>> gateways,
                                      Duration resend, Duration giveUpAfter) {
        return resender(new CoordinatorActor.CancelJob(listener, "by the submitter"), null, gateways, listener,
            () -> false, resend, giveUpAfter, "the job's cancellation", "the job ends", null);
    }

    /**
     * The first gateway, in seed order, whose node answers an Identify of it within {@code waitEach},
     * the seeds tried round after round (a node still starting, or an association slow to open under
     * load, answers a later try) until {@code deadline}: the job's first copy goes there only (its repeats, until
     * the coordinator answers, go to every seed, and the coordinator takes one). Null when none answered.
     */
    private ActorRef<CoordinatorActor.Command> answeringGateway(Duration waitEach, Duration deadline) {
        long end = System.nanoTime() + deadline.toNanos();
        while (true) {
            for (ActorRef<CoordinatorActor.Command> g : gateways) {
                long leftMs = (end - System.nanoTime()) / 1_000_000;
                if (leftMs <= 0) {
                    return null;
                }
                Duration wait = Duration.ofMillis(Math.min(waitEach.toMillis(), leftMs));
                try {
                    system.classicSystem().actorSelection(g.path()).resolveOne(wait).toCompletableFuture()
                        .get(wait.toMillis() + 1_000, TimeUnit.MILLISECONDS);
                    return g;
                } catch (java.util.concurrent.ExecutionException | java.util.concurrent.TimeoutException e) {
                    if (gateways.size() > 1) {      // a single seed's silence is the caller's to report
                        system.log().warn("troupe: seed {} did not answer within {} ms; trying the next seed",
                            g.path().address().hostPort(), wait.toMillis());
                    }
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return null;
                }
            }
        }
    }

    private static String seedsOf(List<ActorRef<CoordinatorActor.Command>> gateways) {
        List<String> out = new java.util.ArrayList<>();
        for (ActorRef<CoordinatorActor.Command> g : gateways) {
            var a = g.path().address();
            out.add(a.getHost().orElse("?") + ":" + a.getPort().map(String::valueOf).orElse("?"));
        }
        return String.join(", ", out);
    }

    /**
     * Leaves the cluster and stops the actor system, then the data plane if this node owns it. An actor
     * system that has not terminated after 30 s (a stalled remoting stream) is logged and left behind.
     */
    @Override
    public void close() {
        system.terminate();
        try {
            system.getWhenTerminated().toCompletableFuture().get(30, TimeUnit.SECONDS);
        } catch (java.util.concurrent.TimeoutException e) {
            // Pekko's Artery (1.7.0) waits without a deadline for its remoting streams when the system
            // terminates, and a stream stalled by a peer (a refused TLS handshake, a peer gone) can hold
            // it (apache/pekko#3247, bounded upstream by shutdown-streams-timeout after 1.7.0). Its shutdown
            // phases (leaving the cluster) have run by then; this node's own resources are released below.
            org.slf4j.LoggerFactory.getLogger(TroupeNode.class).warn("node {} did not finish terminating within 30 s "
                + "(a remoting stream stalled; Pekko Artery waits for it without a deadline): its remoting threads may "
                + "linger", system.name());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while the node stopped", e);
        } catch (java.util.concurrent.ExecutionException e) {
            throw new IllegalStateException("node failed to stop: " + e.getCause(), e.getCause());
        } finally {
            RefusedInputs.release(instanceId);
            if (ownsTransport && transport != null) {
                transport.close();
            }
        }
    }

    /** Convenience for tests and the embedded cluster. */
    static Duration seconds(long s) {
        return Duration.ofSeconds(s);
    }

    static List<String> list(String... v) {
        return List.of(v);
    }
}
