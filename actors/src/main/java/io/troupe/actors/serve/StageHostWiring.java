package io.troupe.actors.serve;

import io.troupe.models.infer.InferenceWeights;
import io.troupe.models.infer.KvPrecision;
import io.troupe.models.parallel.StagePartition;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Function;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * The stage hosts' part of wiring a {@link PipelineStepRunner}'s pipeline for one epoch, asked through its
 * {@link StageHostWatch} actor: the host placed for each stage 1..N-1 loads that stage, then connects it
 * to the next. A host that is silent or refuses a load is noted as unfit ({@link StagePlacement}).
 */
final class StageHostWiring {
    private final int stages;
    private final StageLinks links;
    private final StagePlacement placement;
    private final InferenceWeights weights;
    private final StagePartition partition;
    private final KvPrecision precision;
    private final int blockTokens;
    private final int numBlocks;
    private final ActorRef<Object> linkActor;

    StageHostWiring(int stages, StageLinks links, StagePlacement placement, InferenceWeights weights,
                    StagePartition partition, KvPrecision precision, int blockTokens, int numBlocks,
                    ActorRef<Object> linkActor) {
        this.stages = stages;
        this.links = links;
        this.placement = placement;
        this.weights = weights;
        this.partition = partition;
        this.precision = precision;
        this.blockTokens = blockTokens;
        this.numBlocks = numBlocks;
        this.linkActor = linkActor;
    }

    /**
     * Has the host of each stage g (slot {@code place[g]}) load it for {@code epoch}; returns their answers,
     * by stage (index 0 unused). A host that does not acknowledge within a loss timeout, or answer within
     * {@code timeoutMs}, or that refuses ({@link Refused}), fails the wiring.
     */
    StageProtocol.Reply[] load(int[] place, long epoch, long timeoutMs) {
        String quantization = weights.quantization().name().toLowerCase(Locale.ROOT);
        List<CompletableFuture<StageProtocol.Reply>> loads = new ArrayList<>();
        List<CompletableFuture<StageProtocol.Reply>> acks = new ArrayList<>();
        for (int g = 1; g < stages; g++) {
            int s = partition.startBlock(g);
            int e = partition.endBlock(g);
            int stage = g;
            CompletableFuture<StageProtocol.Reply> ack = new CompletableFuture<>();
            acks.add(ack);
            loads.add(ask(place[g], g, epoch, ack, self -> new StageProtocol.Load(stage, stages, s, e,
                weights.fingerprint(), quantization, precision.name().toLowerCase(Locale.ROOT), blockTokens, numBlocks,
                epoch, self)));
        }
        StageProtocol.Reply[] replies = new StageProtocol.Reply[stages];
        long ackMs = links.lossTimeout().toMillis();
        for (int g = 1; g < stages; g++) {          // a host that is not there is known in a loss timeout
            answer(acks.get(g - 1), g, "load", ackMs, place);
        }
        for (int g = 1; g < stages; g++) {
            replies[g] = answer(loads.get(g - 1), g, "load", timeoutMs, place);
        }
        return replies;
    }

    /**
     * Has the host of each stage g connect it, for {@code epoch}, to the next stage's endpoint
     * ({@code endpoints[g + 1]}), the last stage to {@code front}; waits for every answer.
     */
    void connect(int[] place, long epoch, String[] endpoints, String front, long timeoutMs) {
        List<CompletableFuture<StageProtocol.Reply>> connects = new ArrayList<>();
        for (int g = 1; g < stages; g++) {
            String next = g + 1 < stages ? endpoints[g + 1] : front;
            int stage = g;
            connects.add(ask(place[g], g, epoch, null, self -> new StageProtocol.Connect(stage, epoch,
                next, self)));
        }
        for (int g = 1; g < stages; g++) {
            answer(connects.get(g - 1), g, "connect", timeoutMs, place);
        }
    }

    /** The hosts of stages 1..N-1, by stage. */
    List<String> placed(int[] place) {
        List<String> l = new ArrayList<>();
        for (int g = 1; g < stages; g++) {
            l.add(links.hosts().get(place[g]));
        }
        return l;
    }

    /** The answer of stage {@code stage}'s host; a host that is silent or refuses a load is noted as unfit. */
    private StageProtocol.Reply answer(CompletableFuture<StageProtocol.Reply> f, int stage, String what,
                                       long timeoutMs, int[] place) {
        StageProtocol.Reply r;
        try {
            r = f.get(timeoutMs, TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            if (what.equals("load")) {
                placement.failed(place[stage], System.nanoTime());
            }
            throw new IllegalStateException("stage host at " + links.hosts().get(place[stage]) + " did not answer the "
                + what + " of stage " + stage + " within " + timeoutMs + " ms");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted", e);
        } catch (ExecutionException e) {
            throw new IllegalStateException(e.getCause().getMessage(), e.getCause());
        }
        if (r.error() != null) {
            if (what.equals("load")) {
                placement.refused(place[stage], System.nanoTime());
            }
            throw new Refused("stage host at " + links.hosts().get(place[stage]) + " refused the " + what + " of stage "
                + stage + ": " + r.error());
        }
        return r;
    }

    /** A stage host answered with a refusal (not silence), or the stages refuse each other's frames. */
    static final class Refused extends IllegalStateException {
        private static final long serialVersionUID = 1L;

        Refused(String message) {
            super(message);
        }
    }

    /**
     * Sends a message to the host named at {@code slot}; {@code ack} (may be null) completes with its
     * acknowledgement, the result with its answer.
     */
    private CompletableFuture<StageProtocol.Reply> ask(int slot, int stage, long epoch,
        CompletableFuture<StageProtocol.Reply> ack, Function<ActorRef<StageProtocol.Reply>, Object> message) {
        CompletableFuture<StageProtocol.Reply> f = new CompletableFuture<>();
        linkActor.tell(new StageHostWatch.Ask(slot, stage, epoch, message, ack, f));
        return f;
    }
}
