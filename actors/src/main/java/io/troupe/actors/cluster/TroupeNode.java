package io.troupe.actors.cluster;

import com.typesafe.config.Config;
import io.troupe.actors.api.JobEvent;
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
 * the coordinator singleton (which runs on the oldest node with the coordinator role). Several
 * nodes in one JVM share one data-plane node: every busy thread costs a core.
 */
public final class TroupeNode implements AutoCloseable {
    private final ActorSystem<Void> system;
    private final TransportNode transport;
    private final boolean ownsTransport;
    private final ActorRef<CoordinatorActor.Command> coordinator;

    private TroupeNode(ActorSystem<Void> system, TransportNode transport, boolean ownsTransport,
                       ActorRef<CoordinatorActor.Command> coordinator) {
        this.system = system;
        this.transport = transport;
        this.ownsTransport = ownsTransport;
        this.coordinator = coordinator;
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
        boolean hostsWorkers = settings.roles().contains("worker");
        TransportNode transport = sharedTransport != null ? sharedTransport
            : hostsWorkers ? TransportNode.launch(TransportConfig.from(base), Throwable::printStackTrace) : null;
        CompletableFuture<ActorRef<CoordinatorActor.Command>> proxy = new CompletableFuture<>();
        Behavior<Void> guardian = Behaviors.setup(ctx -> {
            if (hostsWorkers) {
                for (int i = 0; i < settings.workers(); i++) {
                    ctx.spawn(WorkerActor.create(transport, i, settings.threadsPerWorker()), "worker-" + i);
                }
            }
            SingletonActor<CoordinatorActor.Command> singleton = SingletonActor.of(CoordinatorActor.create(), "coordinator")
                .withSettings(ClusterSingletonSettings.create(ctx.getSystem()).withRole("coordinator"));
            proxy.complete(ClusterSingleton.get(ctx.getSystem()).init(singleton));
            return Behaviors.empty();
        });
        ActorSystem<Void> system;
        try {
            system = ActorSystem.create(guardian, settings.systemName(), settings.pekkoConfig(base));
        } catch (RuntimeException e) {
            if (sharedTransport == null && transport != null) {
                transport.close();
            }
            throw e;
        }
        if (settings.seeds().isEmpty()) {
            // No seeds: this node starts a new cluster by joining itself.
            Cluster c = Cluster.get(system);
            c.manager().tell(new org.apache.pekko.cluster.typed.Join(c.selfMember().address()));
        }
        try {
            return new TroupeNode(system, transport, sharedTransport == null, proxy.get(30, TimeUnit.SECONDS));
        } catch (Exception e) {
            system.terminate();
            throw new IllegalStateException("node did not start: " + e.getMessage(), e);
        }
    }

    /** host:port of this node's control plane (the port actually bound when 0 was asked). */
    public String hostPort() {
        var a = Cluster.get(system).selfMember().address();
        return a.getHost().get() + ":" + a.getPort().get();
    }

    public ActorSystem<Void> system() {
        return system;
    }

    /** This node's data plane; null on a node without the worker role (it moves no tensors). */
    public TransportNode transport() {
        return transport;
    }

    /**
     * Submits a job to the coordinator; {@code events} gets the job's events in order, on an actor
     * thread, up to and including its {@link JobEvent.Finished} or {@link JobEvent.Failed}.
     *
     * @return cancels the job when run (the coordinator ends it as {@link JobEvent.Failed}, its
     *         reason starting with {@code cancelled}); nothing when the job has already ended
     */
    public Runnable submit(JobRequest job, Consumer<JobEvent> events) {
        ActorRef<JobEvent> listener = system.systemActorOf(Behaviors.<JobEvent>receive((ctx, e) -> {
            events.accept(e);
            return e instanceof JobEvent.Finished || e instanceof JobEvent.Failed ? Behaviors.stopped() : Behaviors.same();
        }), "job-listener-" + System.nanoTime(), org.apache.pekko.actor.typed.Props.empty());
        coordinator.tell(new CoordinatorActor.SubmitJob(job, listener));
        return () -> coordinator.tell(new CoordinatorActor.CancelJob(listener, "by the submitter"));
    }

    /** Leaves the cluster and stops the actor system, then the data plane if this node owns it. */
    @Override
    public void close() {
        system.terminate();
        try {
            system.getWhenTerminated().toCompletableFuture().get(30, TimeUnit.SECONDS);
        } catch (Exception e) {
            throw new IllegalStateException("node did not stop within 30 s", e);
        } finally {
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
