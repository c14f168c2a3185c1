package io.troupe.actors.cli;

import io.troupe.actors.trace.TraceWindow;
import io.troupe.models.checkpoint.CheckpointException;
import io.troupe.models.checkpoint.Checkpoints;
import io.troupe.models.data.Corpora;
import io.troupe.models.data.CorpusCache;
import io.troupe.models.data.DataFingerprint;
import io.troupe.models.train.RunOutputs;
import io.troupe.models.train.StepMetrics;
import io.troupe.models.train.TrainConfig;
import io.troupe.models.train.Trainer;
import io.troupe.runtime.device.Device;
import io.troupe.runtime.device.DeviceUnavailableException;
import io.troupe.runtime.device.Devices;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.HashSet;
import java.util.Locale;
import java.util.Set;
import java.util.function.LongSupplier;

/** {@code troupe train}: trains a GPT on one device and writes {@code runs/<id>/}. */
final class TrainCommand {
    private TrainCommand() {
    }

    static final String USAGE = """
        usage: troupe train [--config FILE] [--model tiny|small|big|medium] [--steps N] [--batch B]
                            [--microbatches M] [--lr LR] [--min-lr LR] [--warmup N] [--grad-clip X]
                            [--data PATH] [--seed S] [--device cpu|cuda|auto] [--threads N]
                            [--eval-interval N] [--eval-batches N|all] [--checkpoint-interval N]
                            [--out DIR] [--resume DIR] [--trace-steps A:B]
                            [--layout DPxPPxTP] [--schedule gpipe|1f1b|interleaved|zb-h1|zb-h2|adaptive]
                            [--virtual V] [--partition N,N,...] [--step-timeout-ms MS]
                            [--engine cluster|in-process] [--bucket-kib KIB] [--sequence-parallel]
                            [--zero 0|1|2] [--recompute none|selective|full]
                            [--grad-compression none|bf16|int8-ef]
        With no options: the small GPT on the built-in corpus for 200 steps, layout 2x2 (dp 2 x pp 2)
        on an embedded 4-node cluster in this process; --layout 1x1 trains on one device.
        With a layout, --microbatches is the number of micro-batches per replica, and
        --engine in-process runs the workers without actors and Aeron.
        --data PATH: a text file or a directory of files (bytes are tokens; the last 10% is validation).
        --eval-batches all: validation over every non-overlapping window of the validation split.
        --trace-steps A:B: trace.json and pipeline.svg cover steps A..B, laid end to end (default:
        the last step).""";

    /**
     * The corpus {@code --data} names: a text file or a directory of them (see {@link Corpora}), empty for the
     * built-in corpus; {@code train} and {@code eval} read it alike, so a run's validation split is the one
     * {@code eval} scores.
     */
    static Corpora corpora(String data) {
        if (data.isEmpty()) {
            return Corpora.builtIn();
        }
        if (!Files.isReadable(Path.of(data))) {
            throw new UsageException("--data: no such readable file or directory '" + data
                + "' (expected a text file or a directory of them; empty for the built-in corpus)");
        }
        return CorpusCache.shared().load(Path.of(data), () -> null).corpora();
    }

    static int run(String[] args, PrintStream out, PrintStream err) {
        Set<String> known = new HashSet<>(TrainSettings.FLAG_KEYS.keySet());
        known.add("config");
        known.add("resume");
        known.add("trace-steps");
        Options options = Options.parse(args, known, TrainSettings.SWITCHES);
        TrainSettings s = TrainSettings.from(options);
        TrainConfig cfg = s.train();
        Corpora data = corpora(s.data());
        data.requireWindows(cfg.model().seqLen());
        if (s.resume() != null && !Files.isDirectory(Path.of(s.resume()))) {
            throw new UsageException("--resume: no such directory '" + s.resume() + "' (expected a run directory)");
        }
        TraceWindow trace = traceWindow(options, cfg.steps());
        Path runDir = s.out().isEmpty()
            ? Path.of("runs", LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss"))
                + "-" + cfg.model().name())
            : Path.of(s.out());
        DataFingerprint fingerprint = checkedData(s);
        refuseCommittedOut(s, runDir);
        // the checkpoint an engine of this process restores from, read once by the check (null: none, or the cluster's)
        java.util.concurrent.atomic.AtomicReference<Checkpoints.Loaded> resumed;
        try {
            resumed = new java.util.concurrent.atomic.AtomicReference<>(checkedResume(s));
        } catch (CheckpointException e) {
            err.println("troupe train: " + e.getMessage());
            return 4;
        }
        if (s.parallel()) {
            if (s.device() == io.troupe.runtime.device.DeviceKind.CUDA
                && !io.troupe.runtime.cuda.CudaSupport.isAvailable()) {
                err.println("troupe train: " + Devices.cudaUnavailableReason());
                return 3;
            }
            return s.engine().equals("cluster") ? ClusterTrainCommand.run(s, data, fingerprint, runDir, trace, out, err)
                : PipelineTrainCommand.run(s, data, fingerprint, runDir, trace, resumed, out, err);
        }
        Device dev;
        try {
            dev = Devices.open(s.device(), s.threads());
        } catch (DeviceUnavailableException e) {
            err.println("troupe train: " + e.getMessage());
            return 3;
        }
        try (LocalTrainStop stop = LocalTrainStop.install(s); dev; Trainer trainer = new Trainer(cfg, dev, data);
             RunOutputs outputs = new RunOutputs(runDir,
                 "Troupe: " + cfg.model().name() + " GPT on " + data.train().description(), false,
                 s.resume() != null)) {
            outputs.recordData(fingerprint);
            trainer.model().recompute(s.memory().recompute());
            out.printf(Locale.ROOT, "troupe: %s GPT (%,d parameters), batch %d x seq %d, %d steps on %s%n",
                cfg.model().name(), trainer.model().layout().numel(), cfg.batchSize(), cfg.model().seqLen(),
                cfg.steps(), dev.name());
            outputs.countEpochs(trainer.trainBatches(), cfg.batchSize());
            out.printf("troupe: data %s; run directory %s%n", data.train().description(), runDir);
            if (s.resume() != null) {
                Checkpoints.Loaded ckpt = resumed.getAndSet(null); // its tensors are garbage once restored
                trainer.restore(ckpt);
                stop.checkpointAt(trainer.step(), Path.of(s.resume()));
                out.printf("troupe: resumed from %s at step %d%n", ckpt.dir(), trainer.step());
            }
            Progress progress = new Progress(out, cfg.steps());
            while (trainer.step() < cfg.steps() && !stop.requested()) {
                StepMetrics m = trainer.trainStep();
                outputs.record(m);
                progress.print(m);
                if (cfg.checkpointDue(m.step())) {
                    trainer.checkpoint(outputs.checkpoints());
                    stop.checkpointAt(m.step(), runDir);
                }
            }
            outputs.writePlot();
            if (trainer.step() < cfg.steps()) {
                return stop.report(outputs, cfg.steps(), out);
            }
            StepMetrics last = outputs.history().isEmpty() ? null : outputs.history().get(outputs.history().size() - 1);
            double val = last != null && !Double.isNaN(last.valLoss()) ? last.valLoss() : trainer.validationLoss();
            out.printf(Locale.ROOT, "troupe: final validation loss %.4f; metrics.csv, loss.svg and checkpoints in %s%n",
                val, runDir);
            return 0;
        } catch (CheckpointException e) {
            err.println("troupe train: " + e.getMessage());
            return 4;
        }
    }

    /** {@code --trace-steps A:B}, or the last step. */
    static TraceWindow traceWindow(Options options, long steps) {
        if (!options.has("trace-steps")) {
            return TraceWindow.lastOf(steps);
        }
        try {
            return TraceWindow.parse(options.get("trace-steps"), steps);
        } catch (IllegalArgumentException e) {
            throw new UsageException(e.getMessage());
        }
    }

    /**
     * The data's size and hash, after refusing a {@code --resume} of a run that recorded other data.
     * Each engine writes it as {@code data.json} once it has accepted the run (the cluster engine's coordinator
     * beside the job record in the checkpoint directory, once the ranks agreed on it), so a refused run
     * leaves no directory behind and never rewrites the record of the run its {@code --out} names.
     */
    static DataFingerprint checkedData(TrainSettings s) {
        // the fingerprint of the bytes this process trains on, read once (the workers of an in-process cluster
        // take the same entry)
        DataFingerprint fp = s.data().isEmpty() ? DataFingerprint.builtIn()
            : CorpusCache.shared().load(Path.of(s.data()), () -> null).fingerprint();
        if (s.resume() != null) {
            try {
                fp.requireSameAs(Path.of(s.resume()));
            } catch (IllegalArgumentException e) {
                throw new UsageException(e.getMessage());
            }
        }
        return fp;
    }

    /**
     * Refuses an {@code --out} that already holds a committed checkpoint (unless it is the run {@code --resume}
     * continues): every engine would write its metrics, plots and data record over that run's, and the
     * single-device and in-process engines their checkpoints beside its own.
     */
    static void refuseCommittedOut(TrainSettings s, Path runDir) {
        if (s.resume() != null && sameDirectory(Path.of(s.resume()), runDir)) {
            return;
        }
        Path checkpoints = runDir.resolve("checkpoints");
        if (!Files.isDirectory(checkpoints)) {
            return;
        }
        Path found;
        try {
            found = Checkpoints.resolve(checkpoints);
        } catch (CheckpointException none) {
            return;                                  // no commit there: a fresh run may use it
        }
        throw new UsageException("run directory " + runDir + " already holds a committed checkpoint (" + found
            + "); continue that run with --resume " + runDir + ", or choose another --out");
    }

    private static boolean sameDirectory(Path a, Path b) {
        try {
            return Files.exists(b) && Files.isSameFile(a, b);
        } catch (java.io.IOException e) {
            return false;
        }
    }

    /**
     * The {@code --resume} run's last commit, checked against this run's model, batch size, seed and steps and
     * verified (every file's size and CRC32C) before any engine starts, so a refused resume writes nothing: not
     * under {@code --out}, not in the run it names.
     *
     * <p>The engines of this process (the single-device trainer, {@code --engine in-process}) restore from what the
     * check read: {@link Checkpoints#load} verifies each file's size and CRC32C as it decodes it, so a checkpoint of
     * many GB is read once, not verified and then read again. The cluster engine's workers read their own shards,
     * perhaps on other hosts, once the job started; this process only verifies the files (a second read of them)
     * and keeps nothing: that read is what keeps a resume refused for a damaged file from writing anything.
     *
     * @return the checkpoint loaded, for an engine of this process; null without {@code --resume} or for the cluster
     * @throws CheckpointException naming the checkpoint and what is wrong with it
     */
    static Checkpoints.Loaded checkedResume(TrainSettings s) {
        if (s.resume() == null) {
            return null;
        }
        Path found = Checkpoints.resolve(Path.of(s.resume()));
        io.troupe.models.checkpoint.Manifest m = Checkpoints.readManifest(found);
        checkResumable(s, found, m);
        if (s.parallel() && s.engine().equals("cluster")) {
            Checkpoints.verify(found);
            return null;
        }
        return Checkpoints.load(found);
    }

    /** Refuses a checkpoint written for another model, batch size or seed, or past this run's steps. */
    private static void checkResumable(TrainSettings s, Path found, io.troupe.models.checkpoint.Manifest m) {
        TrainConfig cfg = s.train();
        if (!m.model().equals(cfg.model())) {
            throw new CheckpointException("checkpoint " + found + " was written for model " + m.model()
                + ", this run trains " + cfg.model());
        }
        if (m.batchSize() != cfg.batchSize() || m.seed() != cfg.seed()) {
            throw new CheckpointException("checkpoint " + found + " was written with batch_size=" + m.batchSize()
                + ", seed=" + m.seed() + "; this run has batch_size=" + cfg.batchSize() + ", seed=" + cfg.seed());
        }
        if (m.step() > cfg.steps()) {
            throw new CheckpointException("checkpoint " + found + " is at step " + m.step() + ", past steps="
                + cfg.steps());
        }
    }

    /**
     * One progress line per step: step, loss, lr, tokens/s, ms/step, ETA. The ETA is the time per step since the
     * first step this run printed (the first line: that step's own time), times the steps left: start-up, warm-up
     * and the steps of an earlier run (a resume) do not count. A step at or before the last one printed (a recovery
     * rolled the job back) starts the measure afresh.
     */
    static final class Progress {
        private final PrintStream out;
        private final long total;
        private final LongSupplier nanoClock;
        private long baseStep = -1;
        private long baseNs;
        private long lastStep = -1;

        Progress(PrintStream out, long total) {
            this(out, total, System::nanoTime);
        }

        Progress(PrintStream out, long total, LongSupplier nanoClock) {
            this.out = out;
            this.total = total;
            this.nanoClock = nanoClock;
        }

        void print(StepMetrics m) {
            print(m, Double.NaN);
        }

        void print(StepMetrics m, double bubble) {
            String val = Double.isNaN(m.valLoss()) ? "" : String.format(Locale.ROOT, " | val %.4f", m.valLoss());
            String bub = Double.isNaN(bubble) ? "" : String.format(Locale.ROOT, " | bubble %4.1f%%", 100 * bubble);
            out.printf(Locale.ROOT, "step %5d/%d | loss %.4f%s | lr %.2e | %,9.0f tok/s | %7.1f ms/step%s | ETA %s%n",
                m.step(), total, m.loss(), val, m.lr(), m.tokensPerSec(), m.stepMs(), bub, formatEta(etaSeconds(m)));
        }

        /** Seconds left after step {@code m}, at the pace of this run's steps so far. */
        double etaSeconds(StepMetrics m) {
            long now = nanoClock.getAsLong();
            long left = Math.max(0, total - m.step());
            double secondsPerStep;
            if (baseStep < 0 || m.step() <= lastStep) {
                baseStep = m.step();
                baseNs = now;
                secondsPerStep = m.stepMs() / 1e3;
            } else {
                secondsPerStep = (now - baseNs) / 1e9 / (m.step() - baseStep);
            }
            lastStep = m.step();
            return secondsPerStep * left;
        }

        private static String formatEta(double seconds) {
            long s = Math.round(seconds);
            return s >= 3600 ? String.format("%dh%02dm", s / 3600, (s % 3600) / 60)
                : s >= 60 ? String.format("%dm%02ds", s / 60, s % 60) : s + "s";
        }
    }
}
