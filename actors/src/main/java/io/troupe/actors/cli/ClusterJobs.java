package io.troupe.actors.cli;

import io.troupe.actors.api.JobEvent;
import io.troupe.actors.api.JobHandle;
import io.troupe.actors.api.TrainingJob;
import io.troupe.actors.cluster.JobRequest;
import io.troupe.actors.trace.Timeline;
import io.troupe.actors.trace.TraceWindow;
import io.troupe.models.train.RunOutputs;
import io.troupe.models.train.StepMetrics;
import io.troupe.models.train.TrainConfig;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.TreeMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeoutException;
import java.util.function.BooleanSupplier;

/**
 * What {@code troupe train} (embedded cluster) and {@code troupe submit} share: the job request
 * built from the training settings, and following a submitted job to its end while writing
 * {@code runs/<id>/}: metrics.csv (with bubble and all-reduce columns), loss.svg, and the last
 * step's trace.json and pipeline.svg.
 */
final class ClusterJobs {
    private ClusterJobs() {
    }

    /** How long a stopped run has to end its step or job and report (at least; a stage's step may take longer). */
    static final long STOP_WAIT_MS = 60_000;

    /** How long a user's stop of a run with this step timeout may take before the process ends regardless. */
    static long stopWaitMs(TrainSettings s) {
        return Math.max(STOP_WAIT_MS, s.stepTimeoutMs());
    }

    /**
     * The checkpoint directory of a run: {@code runDir/checkpoints}, or with {@code --resume DIR}
     * that run's checkpoint directory (the job continues from, and keeps committing into, it).
     */
    static Path checkpointDir(TrainSettings s, Path runDir) {
        if (s.resume() != null) {
            Path r = Path.of(s.resume()).toAbsolutePath();
            return Files.isDirectory(r.resolve("checkpoints")) ? r.resolve("checkpoints") : r;
        }
        Path dir = runDir.resolve("checkpoints").toAbsolutePath();
        if (Files.isDirectory(dir)) {
            try {
                Path found = io.troupe.models.checkpoint.Checkpoints.resolve(dir);
                throw new UsageException("run directory " + runDir + " already holds a committed checkpoint (" + found
                    + "); continue that run with --resume " + runDir + ", or choose another --out");
            } catch (io.troupe.models.checkpoint.CheckpointException none) {
                // no commit there: a fresh run may use it
            }
        }
        return dir;
    }

    /**
     * A user's stop of a followed job: the signal that asks for it, and what the stop line tells to continue the
     * run, {@code COMMAND --resume RESUMEFROM} ({@code command}: {@code scripts/troupe train}, {@code scripts/troupe
     * submit}, or what a launcher that wraps submit names with {@value #RESUME_COMMAND_PROPERTY}).
     */
    record Stop(StopSignal signal, String command, Path resumeFrom) {
        /**
         * System property: the command a stopped {@code submit} tells to resume with, when a launcher runs it
         * ({@code scripts/launch-local.sh N}: its nodes end with it, so {@code scripts/troupe submit} would find
         * no cluster). Default {@code scripts/troupe submit}.
         */
        static final String RESUME_COMMAND_PROPERTY = "troupe.submit.resume-command";
        /** Environment variable the launch scripts set instead of {@link #RESUME_COMMAND_PROPERTY}. */
        static final String RESUME_COMMAND_ENV = "TROUPE_RESUME_COMMAND";

        /** The command a stopped {@code submit} names: the property, else the environment variable, else the CLI. */
        static String resumeCommand() {
            String env = System.getenv(RESUME_COMMAND_ENV);
            return System.getProperty(RESUME_COMMAND_PROPERTY,
                env == null || env.isBlank() ? "scripts/troupe submit" : env);
        }

        /** The stop of {@code job} by {@code signal}, resumed from the run directory its checkpoints go to. */
        static Stop of(StopSignal signal, String command, JobRequest job) {
            return new Stop(signal, command, resumeDir(Path.of(job.checkpointDir())));
        }
    }

    /**
     * The job {@code s} describes; {@code data} is the data as this process read it (null: not read here), which
     * every worker's must equal.
     */
    static JobRequest request(TrainSettings s, Path checkpointDir, TraceWindow trace,
                              io.troupe.models.data.DataFingerprint data) {
        TrainConfig t = s.train();
        TrainingJob.Builder b = TrainingJob.builder();
        if (t.evalBatches() == io.troupe.models.data.ValidationPlan.ALL) {
            b.validationOverAll(t.evalInterval());
        } else {
            b.validation(t.evalInterval(), t.evalBatches());
        }
        return b.model(t.model().name())
            .layout(s.layout().dp() + "x" + s.layout().pp() + "x" + s.layout().tp())
            .virtualStages(s.layout().virtualStages())
            .schedule(s.schedule()).microbatches(t.microBatches()).batchSize(t.batchSize()).steps(t.steps())
            .lr(t.lr(), t.minLr(), t.warmupSteps()).gradClip(t.gradClip()).seed(t.seed()).partition(s.partition())
            .data(s.data()).expectedData(data).checkpoints(t.checkpointInterval(), checkpointDir.toString())
            .stepTimeoutMs(s.stepTimeoutMs())
            .bucketBytes(s.bucketBytes())
            .zero(s.memory().zero()).recompute(s.memory().recompute().optionName())
            .gradCompression(s.memory().gradCompression().optionName())
            .sequenceParallel(s.sequenceParallel())
            .traceSteps(trace.first(), trace.last())
            .device(s.device().name().toLowerCase(Locale.ROOT)).build().request();
    }

    /** How {@link #awaitEnd} waits for a job's end: {@link JobHandle#await}. */
    @FunctionalInterface
    interface JobEnd {
        JobEvent await(Duration timeout) throws TimeoutException, InterruptedException;
    }

    /**
     * The job's end within {@code timeout}; null when none came. A stop asked for by then has its own bound,
     * {@code stopWait} more, rather than {@code timeout}'s: a {@code --timeout-s} shorter than the stop's wait
     * (a coordinator gone, so no one confirms the cancel) ends as the stop, not as a job that did not end.
     */
    static JobEvent awaitEnd(JobEnd job, Duration timeout, BooleanSupplier stopAsked, Duration stopWait)
        throws InterruptedException {
        try {
            return job.await(timeout);
        } catch (TimeoutException e) {
            if (!stopAsked.getAsBoolean()) {
                return null;
            }
        }
        try {
            return job.await(stopWait);
        } catch (TimeoutException e) {
            return null;
        }
    }

    /**
     * Prints the progress line of every committed step, records it, waits for the end and writes
     * the plot and the traced step's timeline. A stop {@code stop} (null: none) asks for cancels the job
     * ({@link JobHandle#cancel()}: the workers abort, the job record says {@code stopped}). Returns 0 when the job
     * finished, 5 when it failed or did not end within {@code timeout}, the signal's status
     * ({@link StopSignal#signalStatus()}: 130, 143) when {@code stop} stopped it, after the stop line
     * ({@link #stopLine}).
     */
    static int follow(JobHandle h, RunOutputs outputs, long totalSteps, Duration timeout,
                      Stop stop, PrintStream out, PrintStream err) {
        if (stop != null) {
            stop.signal().onRequest(h::cancel);
        }
        TrainCommand.Progress progress = new TrainCommand.Progress(out, totalSteps);
        List<JobEvent.StepTrace> traces = new CopyOnWriteArrayList<>();
        h.onEvent(e -> {
            if (e instanceof JobEvent.Started st) {
                out.printf("troupe: job %s started, epoch %d, %d workers: %s%n",
                    st.jobId(), st.epoch(), st.worldSize(), st.assignment());
                out.printf("troupe: epoch %d in-memory snapshots %s%n", st.epoch(), st.snapshots());
            } else if (e instanceof JobEvent.StepCompleted sc) {
                StepMetrics m = new StepMetrics(sc.step(), sc.totalSteps(), sc.loss(), sc.valLoss(), sc.lr(),
                    sc.gradNorm(),
                    sc.tokensPerSec(), sc.stepMs());
                outputs.record(m, sc.bubble(), sc.allReduceMs(), sc.memPeakMib(), sc.gradBytesSent());
                progress.print(m, sc.bubble());
            } else if (e instanceof JobEvent.StepTrace st) {
                traces.add(st);
            } else if (e instanceof JobEvent.Recovering rc) {
                out.printf("troupe: %s in epoch %d: %s; last disk checkpoint step %d (restart %d)%n",
                    rc.planned() ? "planned restart" : "fault", rc.epoch(), rc.reason(), rc.diskCheckpointStep(),
                    rc.restarts());
            } else if (e instanceof JobEvent.Recovered rd) {
                out.printf("troupe: recovered: epoch %d on layout %s committed step %d, %.0f ms after the fault"
                    + " (restored step %d)%n",
                    rd.epoch(), rd.layout(), rd.step(), rd.detectToCommitMs(), rd.restoredStep());
            }
        });
        JobEvent end;
        BooleanSupplier stopAsked = () -> stop != null && stop.signal().requested();
        try {
            end = awaitEnd(h::await, timeout, stopAsked,
                Duration.ofMillis(stop == null ? 0 : stop.signal().stopWaitMs()));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return 5;
        }
        if (end == null && stopAsked.getAsBoolean()) {
            err.printf("troupe: the stop (%s) did not end within %d s%n", stop.signal().reason(),
                stop.signal().stopWaitMs() / 1000);
            return stop.signal().signalStatus();
        }
        if (end == null) {
            err.println("troupe: job did not end within " + timeout.toSeconds() + " s");
            return 5;
        }
        outputs.writePlot();
        if (traces.size() == 1) {
            RunTimeline.write(traces.get(0).timeline(), outputs.dir());
        } else if (!traces.isEmpty()) {
            // The window's steps end to end, in step order (a replayed step after a recovery counts once).
            TreeMap<Long, JobEvent.StepTrace> byStep = new TreeMap<>();
            for (JobEvent.StepTrace st : traces) {
                byStep.put(st.step(), st);
            }
            List<Long> steps = new ArrayList<>(byStep.keySet());
            List<Timeline> timelines = new ArrayList<>();
            byStep.values().forEach(st -> timelines.add(st.timeline()));
            String title = byStep.firstEntry().getValue().title();
            RunTimeline.write(TraceWindow.sequence(title.replaceAll(", step \\d+$", "")
                + ", steps " + steps.get(0) + "-" + steps.get(steps.size() - 1), steps, timelines, 0), outputs.dir());
        }
        if (end instanceof JobEvent.Failed f && stop != null && stop.signal().requested()) {
            out.println(stopLine(outputs, totalSteps, f.lastCommittedStep(), stop.command(), stop.resumeFrom()));
            out.flush();
            return stop.signal().signalStatus();
        }
        if (end instanceof JobEvent.Failed f) {
            err.printf("troupe: job failed: %s; last committed step %d (epoch %d)%n",
                f.reason(), f.lastCommittedStep(), f.epoch());
            return 5;
        }
        JobEvent.Finished fin = (JobEvent.Finished) end;
        double val = Double.NaN;
        for (StepMetrics m : outputs.history()) {
            if (!Double.isNaN(m.valLoss())) {
                val = m.valLoss();
            }
        }
        String files = "metrics.csv, loss.svg" + (traces.isEmpty() ? "" : ", pipeline.svg, trace.json");
        String where = whereWritten(files, outputs.dir(), fin.checkpoint());
        out.printf(Locale.ROOT, "troupe: job finished after %d steps, final loss %.4f, final validation loss %.4f;"
            + " %s%n",
            fin.steps(), fin.finalLoss(), val, where);
        return 0;
    }

    /** What {@code --resume} names to continue a job that commits into {@code checkpointDir}: its run directory. */
    static Path resumeDir(Path checkpointDir) {
        Path abs = checkpointDir.toAbsolutePath().normalize();
        return abs.getFileName() != null && abs.getFileName().toString().equals("checkpoints") ? abs.getParent() : abs;
    }

    /**
     * What a stopped run says: the last step it ran and, when a checkpoint was committed (step
     * {@code committedStep} above 0), how to resume from it: {@code COMMAND --resume resumeFrom}.
     */
    static String stopLine(RunOutputs outputs, long totalSteps, long committedStep, String command,
                           Path resumeFrom) {
        List<StepMetrics> history = outputs.history();
        long last = history.isEmpty() ? committedStep : history.get(history.size() - 1).step();
        String head = "troupe: stopped at step " + last + " of " + totalSteps + " (interrupted); ";
        if (committedStep <= 0) {
            return head + "no checkpoint was committed yet: nothing to resume";
        }
        return head + "its last checkpoint is step " + committedStep + ": resume with " + command
            + " --resume " + resumeFrom + " and this run's other options";
    }

    /**
     * Where a finished job's files went: {@code "FILES and checkpoints in RUN"}, or, when its last
     * checkpoint ({@code lastCheckpoint}, a {@code step-N} directory; empty or null when none) lies
     * outside the run directory, as a resumed job's commits do (they go on in the run it resumed),
     * {@code "FILES in RUN; checkpoints in DIR"}.
     */
    static String whereWritten(String files, Path runDir, String lastCheckpoint) {
        if (lastCheckpoint != null && !lastCheckpoint.isEmpty()) {
            Path checkpoints = Path.of(lastCheckpoint).toAbsolutePath().normalize().getParent();
            if (checkpoints != null && !checkpoints.startsWith(runDir.toAbsolutePath().normalize())) {
                return files + " in " + runDir + "; checkpoints in " + checkpoints;
            }
        }
        return files + " and checkpoints in " + runDir;
    }
}
