package io.troupe.actors.cli;

import io.troupe.actors.engine.LocalPipelineEngine;
import io.troupe.actors.engine.PipelineJobSpec;
import io.troupe.actors.engine.PipelineStepMetrics;
import io.troupe.actors.trace.Timeline;
import io.troupe.actors.trace.TraceWindow;
import io.troupe.models.checkpoint.CheckpointException;
import io.troupe.models.checkpoint.Checkpoints;
import io.troupe.models.data.Corpora;
import io.troupe.models.data.DataFingerprint;
import io.troupe.models.data.ValidationPlan;
import io.troupe.models.parallel.StagePartition;
import io.troupe.models.train.RunOutputs;
import io.troupe.models.train.StepMetrics;
import io.troupe.models.train.TrainConfig;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * {@code troupe train --layout DPxPP ... --engine in-process}: dp × pp training in this process with the step
 * engine. Ctrl-C or SIGTERM ends the run after the step in progress ({@link LocalTrainStop}).
 */
final class PipelineTrainCommand {
    private PipelineTrainCommand() {
    }

    /** @param resumed the {@code --resume} checkpoint as {@link TrainCommand#checkedResume} loaded it (taken here) */
    static int run(TrainSettings s, Corpora data, DataFingerprint fingerprint, Path runDir, TraceWindow trace,
                   java.util.concurrent.atomic.AtomicReference<Checkpoints.Loaded> resumed, PrintStream out,
                   PrintStream err) {
        TrainConfig cfg = s.train();
        PipelineJobSpec spec;
        try {
            StagePartition partition = s.partition().isEmpty()
                ? StagePartition.balanced(cfg.model(), s.layout().modelStages())
                : StagePartition.explicit(s.partition(), cfg.model(), s.layout().modelStages());
            int workers = s.layout().worldSize();
            int threadsPerWorker = Math.max(1, s.threads() / workers);
            spec = new PipelineJobSpec(cfg, s.layout(), s.schedule(), cfg.microBatches(), partition, threadsPerWorker,
                s.stepTimeoutMs(), s.device(), "", s.sequenceParallel()).withMemory(s.memory());
            if (s.layout().dp() > 1 && s.memory().gradCompression() != io.troupe.models.memory.GradCompression.NONE) {
                throw new UsageException("grad-compression " + s.memory().gradCompression().optionName()
                    + " needs the cluster engine (the in-process engine sums replicas in memory)");
            }
        } catch (IllegalArgumentException e) {
            throw new UsageException(e.getMessage());
        }
        ValidationPlan val = new ValidationPlan(data.val(), cfg.model().seqLen(), cfg.batchSize(),
            spec.microBatchRows(),
            cfg.evalBatches());
        try (LocalTrainStop stop = LocalTrainStop.install(s);
             LocalPipelineEngine engine = new LocalPipelineEngine(spec, data);
             RunOutputs outputs = new RunOutputs(runDir, "Troupe: " + cfg.model().name() + " GPT, layout " + s.layout()
                 + ", " + s.schedule(), true, s.resume() != null)) {
            outputs.recordData(fingerprint);
            out.printf(Locale.ROOT, "troupe: %s GPT, layout %s (dp %d x pp %d x tp %d, v %d), schedule %s,"
                + " %s of %s per replica, "
                    + "partition %s, %d steps, %d worker threads each%n",
                cfg.model().name(), s.layout(), s.layout().dp(), s.layout().pp(), s.layout().tp(),
                s.layout().virtualStages(), s.schedule(),
                Options.count(spec.microbatches(), "micro-batch", "micro-batches"),
                Options.count(spec.microBatchRows(), "row", "rows"), spec.partition(), cfg.steps(),
                spec.threadsPerWorker());
            out.printf("troupe: data %s; run directory %s%n", data.train().description(), runDir);
            out.printf("troupe: %s%n", engine.plannedMemoryPerRank().line());
            outputs.countEpochs(io.troupe.models.data.Batches.shuffled(data.train(), cfg.model().seqLen(), cfg.seed()),
                cfg.batchSize());
            if (s.resume() != null) {
                Checkpoints.Loaded ckpt = resumed.getAndSet(null); // read once, by the check; garbage once restored
                engine.restore(ckpt);
                stop.checkpointAt(engine.step(), Path.of(s.resume()));
                out.printf("troupe: resumed from %s at step %d%n", ckpt.dir(), engine.step());
            }
            TrainCommand.Progress progress = new TrainCommand.Progress(out, cfg.steps());
            List<Long> tracedSteps = new ArrayList<>();
            List<Timeline> traced = new ArrayList<>();
            while (engine.step() < cfg.steps() && !stop.requested()) {
                PipelineStepMetrics pm = engine.trainStep();
                long step = engine.step();
                StepMetrics m = pm.step();
                if (cfg.evalDue(step)) {
                    m = new StepMetrics(m.step(), m.totalSteps(), m.loss(), engine.validationLoss(val),
                        m.lr(), m.gradNorm(), m.tokensPerSec(), m.stepMs());
                }
                outputs.record(m, pm.bubble(), pm.allReduceMs(), engine.memoryPerRank().totalMib(), -1);
                progress.print(m, pm.bubble());
                if (cfg.checkpointDue(step)) {
                    engine.checkpoint(outputs.checkpoints(), data.train().description());
                    stop.checkpointAt(step, runDir);
                }
                if (trace.contains(step)) {
                    tracedSteps.add(step);
                    traced.add(pm.timeline());
                }
            }
            outputs.writePlot();
            if (!traced.isEmpty()) {
                RunTimeline.write(traced.size() == 1 ? traced.get(0) : TraceWindow.sequence("Troupe " + s.layout() + " "
                    + s.schedule() + ", m=" + spec.microbatches() + ", steps " + trace.first() + ".." + trace.last(),
                    tracedSteps, traced, 0), runDir);
            }
            if (engine.step() < cfg.steps()) {
                return stop.report(outputs, cfg.steps(), out);
            }
            out.printf(Locale.ROOT, "troupe: final validation loss %.4f; metrics.csv, loss.svg, pipeline.svg,"
                + " trace.json and checkpoints in %s%n",
                outputs.history().get(outputs.history().size() - 1).valLoss(), runDir);
            return 0;
        } catch (CheckpointException e) {
            err.println("troupe train: " + e.getMessage());
            return 4;
        }
    }
}
