package io.troupe.actors.cli;

import io.troupe.actors.api.JobHandle;
import io.troupe.actors.api.Troupe;
import io.troupe.actors.cluster.EmbeddedNodes;
import io.troupe.actors.cluster.JobRequest;
import io.troupe.models.data.Corpora;
import io.troupe.models.data.DataFingerprint;
import io.troupe.models.train.RunOutputs;
import io.troupe.models.train.TrainConfig;
import java.io.PrintStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;

/**
 * {@code troupe train --layout DPxPPxTP} (the default engine): an embedded cluster in this process —
 * one Pekko node per worker on 127.0.0.1 sharing one media driver, the coordinator singleton on
 * the first — runs the job exactly as a multi-host cluster would: ranks, Aeron stage links,
 * bucketed data-parallel all-reduce, windows of steps, cluster checkpoints. Ctrl-C or SIGTERM
 * stops the job ({@link StopSignal}, {@link JobHandle#cancel()}: the workers abort, no recovery, the job
 * record says {@code stopped}); the nodes, whose Pekko JVM hooks are off ({@link EmbeddedNodes}), leave the
 * cluster after that. The stop line says where to resume; the exit code is 130 (SIGINT) or 143 (SIGTERM).
 */
final class ClusterTrainCommand {
    private ClusterTrainCommand() {
    }

    static int run(TrainSettings s, Corpora data, DataFingerprint fingerprint, Path runDir,
                   io.troupe.actors.trace.TraceWindow trace, PrintStream out, PrintStream err) {
        TrainConfig cfg = s.train();
        int workers = s.layout().worldSize();
        int threadsPerWorker = Math.max(1, s.threads() / workers);
        JobRequest job = ClusterJobs.request(s, ClusterJobs.checkpointDir(s, runDir), trace, fingerprint);
        // Refuse a bad job (layout, partition, schedule, micro-batches) before starting any node.
        try {
            io.troupe.actors.cluster.JobSpecs.toSpec(job, threadsPerWorker);
        } catch (IllegalArgumentException e) {
            throw new UsageException(e.getMessage());
        }
        long timeoutMs = Math.max(60_000L, s.stepTimeoutMs() * (cfg.steps() + 2L));
        try (StopSignal stop = StopSignal.install("troupe-train", ClusterJobs.stopWaitMs(s));
             EmbeddedNodes nodes = EmbeddedNodes.start(workers, threadsPerWorker);
             RunOutputs outputs = new RunOutputs(runDir, "Troupe: " + cfg.model().name() + " GPT, layout " + s.layout()
                 + ", " + s.schedule() + " (embedded cluster)", true, s.resume() != null)) {
            // data.json: the coordinator records the data the ranks agreed on beside the job record, where the
            // checkpoints are, as it does for a submitted job
            out.printf(Locale.ROOT, "troupe: %s GPT, layout %s (dp %d x pp %d x tp %d, v %d), schedule %s,"
                + " %s per replica, "
                    + "%d steps; embedded cluster of %d nodes on 127.0.0.1, %d thread(s) per worker%n",
                cfg.model().name(), s.layout(), s.layout().dp(), s.layout().pp(), s.layout().tp(),
                s.layout().virtualStages(), s.schedule(),
                Options.count(cfg.microBatches(), "micro-batch", "micro-batches"), cfg.steps(), workers,
                threadsPerWorker);
            out.printf("troupe: data %s; run directory %s%n", data.train().description(), runDir);
            io.troupe.models.parallel.StagePartition partition = s.partition().isEmpty()
                ? io.troupe.models.parallel.StagePartition.balanced(cfg.model(), s.layout().modelStages())
                : io.troupe.models.parallel.StagePartition.explicit(s.partition(),
                    cfg.model(), s.layout().modelStages());
            out.printf("troupe: %s%n",
                io.troupe.models.parallel.ParallelParameterLayout.gpt(cfg.model(), partition, s.sequenceParallel())
                .memoryPerRank(s.layout(), s.memory().zero()));
            outputs.countEpochs(io.troupe.models.data.Batches.shuffled(data.train(), cfg.model().seqLen(), cfg.seed()),
                cfg.batchSize());
            if (s.resume() != null) {
                out.printf("troupe: resuming from the last committed checkpoint in %s%n", job.checkpointDir());
            }
            JobHandle h = Troupe.using(nodes.first()).submit(job);
            return ClusterJobs.follow(h, outputs, cfg.steps(), Duration.ofMillis(timeoutMs),
                ClusterJobs.Stop.of(stop, "scripts/troupe train", job), out, err);
        }
    }
}
