package io.troupe.actors.serve;

import com.typesafe.config.Config;
import io.troupe.models.checkpoint.Checkpoints;
import java.nio.file.Path;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.Done;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A stage host ({@code troupe serve-stage}): an actor system reachable at {@code hostname:port} with
 * a {@link StageHost} at {@code /user/stage-host}, and a data-plane node for the stage's frames
 * ({@link DataPlane}: launched again when a stop past Aeron's driver timeout closed its client). It
 * holds no stage until a server asks it for one; it reads the weights from its own copy of the
 * checkpoint, so the checkpoint must be the server's (compared by fingerprint).
 */
public final class StageHostServer implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(StageHostServer.class);
    private final ActorSystem<Object> system;
    private final DataPlane dataPlane;
    private final Path checkpoint;

    private StageHostServer(ActorSystem<Object> system, DataPlane dataPlane, Path checkpoint) {
        this.system = system;
        this.dataPlane = dataPlane;
        this.checkpoint = checkpoint;
    }

    /**
     * Starts a stage host serving stages of {@code checkpoint} (a step directory, or a run whose latest
     * step is taken), with {@code config}'s {@code troupe.transport} and
     * {@code troupe.serve.stage-link} settings, at {@code hostname:port} (0: a free port), its control link
     * over TLS when {@code troupe.cluster.tls} is on.
     *
     * @throws io.troupe.models.checkpoint.CheckpointException when there is no committed checkpoint there
     */
    public static StageHostServer start(Path checkpoint, String hostname, int port, Config config) {
        return start(checkpoint, hostname, port, config, PipelineStage.StepEntry.NONE);
    }

    /**
     * As {@link #start(Path, String, int, Config)}, calling {@code stepEntry} on a stage's thread as each
     * step of the stages it holds begins: a test holds a step there to see the stage stuck inside it.
     */
    static StageHostServer start(Path checkpoint, String hostname, int port, Config config,
                                 PipelineStage.StepEntry stepEntry) {
        Path dir = Checkpoints.resolve(checkpoint);
        StageLinks links = StageLinks.from(config, java.util.List.of()).at(hostname, port);
        DataPlane dataPlane = new DataPlane(links.transport(), "stage host",
            t -> LOG.warn("stage host data plane error", t));
        try {
            long connectMs = links.connectTimeout().toMillis();
            long lossMs = links.lossTimeout().toMillis();
            ActorSystem<Object> system = ActorSystem.create(Behaviors.setup(ctx -> {
                // a failure in the host's actor restarts it (the stage it held is dropped; the server rewires)
                ctx.spawn(Behaviors.supervise(StageHost.create(dir, dataPlane, connectMs, lossMs,
                    stepEntry))
                    .onFailure(org.apache.pekko.actor.typed.SupervisorStrategy.restart()), StageHost.NAME);
                return Behaviors.empty();
            }), PipelineStepRunner.STAGE_HOST_SYSTEM, links.pekko(config));
            return new StageHostServer(system, dataPlane, dir);
        } catch (RuntimeException e) {
            dataPlane.close();
            throw e;
        }
    }

    /** {@code host:port} servers name in {@code --stage-hosts} (the port actually bound when 0 was asked). */
    public String hostPort() {
        var a = system.address();
        return a.getHost().get() + ":" + a.getPort().get();
    }

    /** The checkpoint step directory it serves from. */
    public Path checkpoint() {
        return checkpoint;
    }

    public CompletionStage<Done> whenTerminated() {
        return system.getWhenTerminated();
    }

    /** Its data plane (a test closes the node's Aeron client as a stop past Aeron's driver timeout does). */
    DataPlane dataPlane() {
        return dataPlane;
    }

    @Override
    public void close() {
        system.terminate();
        try {
            system.getWhenTerminated().toCompletableFuture().get(10, TimeUnit.SECONDS);
        } catch (Exception ignored) {
            // the data plane is closed below either way
        }
        dataPlane.close();
    }
}
