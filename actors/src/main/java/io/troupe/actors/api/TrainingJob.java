package io.troupe.actors.api;

import com.typesafe.config.Config;
import io.troupe.actors.cluster.JobDefaults;
import io.troupe.actors.cluster.JobRequest;
import io.troupe.actors.cluster.JobSpecs;
import io.troupe.models.StageModuleFactory;
import io.troupe.models.data.DataFingerprint;
import io.troupe.models.data.ValidationPlan;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.parallel.Layout;

/** A training job for {@link Troupe#submit}; build it with {@link #builder()} (defaults: {@code reference.conf}). */
public final class TrainingJob {
    private final JobRequest request;

    private TrainingJob(JobRequest request) {
        this.request = request;
    }

    /** The job as it travels to the coordinator, every default filled in. */
    public JobRequest request() {
        return request;
    }

    /** A builder holding {@code reference.conf}'s defaults. */
    public static Builder builder() {
        return new Builder();
    }

    /**
     * Fluent builder. Every setting starts at its default in {@code reference.conf}'s
     * {@code troupe.train} section, the same defaults {@code troupe train} uses (layout 2x2x1, 200
     * steps, warm-up 10% of steps, validation every 50 steps over 8 batches, device auto, ...);
     * batch size, micro-batches, warm-up and virtual stages left at their defaults are derived the
     * same way too. The setters only record their values: {@link #build()} validates the whole job, and refuses
     * a bad value (null included) with an {@link IllegalArgumentException} naming it.
     */
    public static final class Builder {
        private String model;
        private String layout;
        private int virtualStages;
        private String schedule;
        private int microbatches;
        private int batchSize;
        private int steps;
        private float lr;
        private float minLr;
        private int warmup;
        private float gradClip;
        private long seed;
        private String partition;
        private String data;
        private long stepTimeoutMs;
        private int evalInterval;
        private int evalBatches;
        /** Validation over every window of the split ({@link #validationOverAll}), not {@link #evalBatches}. */
        private boolean evalOverAll;
        private long bucketBytes;
        private String device;
        private String moduleFactory = "";
        private int checkpointInterval;
        private String checkpointDir = "";
        private int zero;
        private String recompute;
        private String gradCompression;
        private boolean sequenceParallel;
        private long traceFirst;
        private long traceLast;
        private String dataFingerprint = "";

        private Builder() {
            Config t = JobDefaults.reference();
            model = t.getString("model");
            layout = t.getString("layout");
            virtualStages = t.getInt("virtual-stages");
            schedule = t.getString("schedule");
            microbatches = t.getInt("microbatches");
            batchSize = t.getInt("batch-size");
            steps = t.getInt("steps");
            lr = (float) t.getDouble("lr");
            minLr = (float) t.getDouble("min-lr");
            warmup = t.getInt("warmup-steps");
            gradClip = (float) t.getDouble("grad-clip");
            seed = t.getLong("seed");
            partition = t.getString("partition");
            data = t.getString("data");
            stepTimeoutMs = t.getLong("step-timeout-ms");
            evalInterval = t.getInt("eval-interval");
            evalBatches = t.getInt("eval-batches");
            evalOverAll = evalBatches == ValidationPlan.ALL;
            bucketBytes = t.getLong("bucket-kib") * 1024;
            device = t.getString("device");
            checkpointInterval = t.getInt("checkpoint-interval");
            zero = t.getInt("zero");
            recompute = t.getString("recompute");
            gradCompression = t.getString("grad-compression");
            sequenceParallel = t.getBoolean("sequence-parallel");
        }

        /** The model preset: {@code tiny}, {@code small}, {@code big} or {@code medium}. */
        public Builder model(String v) {
            model = v;
            return this;
        }

        /** The parallel layout {@code DPxPP} or {@code DPxPPxTP}, e.g. {@code 2x2x1}. */
        public Builder layout(String v) {
            layout = v;
            return this;
        }

        /** Model chunks per pipeline stage (the interleaved schedule's v); 0: 2 when interleaved, else 1. */
        public Builder virtualStages(int v) {
            virtualStages = v;
            return this;
        }

        /**
         * The pipeline schedule: {@code gpipe}, {@code 1f1b}, {@code interleaved}, {@code zb-h1}, {@code zb-h2} or
         * {@code adaptive}.
         */
        public Builder schedule(String v) {
            schedule = v;
            return this;
        }

        /** Micro-batches per replica per step (dp x micro-batches must divide the batch); 0: by the layout. */
        public Builder microbatches(int v) {
            microbatches = v;
            return this;
        }

        /** Global batch rows per step; 0: the model preset's default. */
        public Builder batchSize(int v) {
            batchSize = v;
            return this;
        }

        /** Optimizer steps to run (>= 1). */
        public Builder steps(int v) {
            steps = v;
            return this;
        }

        /**
         * The learning-rate schedule: linear warm-up over {@code warmupSteps} steps (-1: 10% of the steps) to
         * {@code peak}, then cosine annealing to {@code floor} (0 <= floor <= peak) at the last step.
         */
        public Builder lr(float peak, float floor, int warmupSteps) {
            lr = peak;
            minLr = floor;
            warmup = warmupSteps;
            return this;
        }

        /** Largest global gradient norm (finite, >= 0); 0 turns clipping off. */
        public Builder gradClip(float v) {
            gradClip = v;
            return this;
        }

        /** Seed of the weight initialization and of the data shuffle. */
        public Builder seed(long v) {
            seed = v;
            return this;
        }

        /** Transformer blocks per model stage, comma separated (e.g. {@code 1,3}); empty: balanced. */
        public Builder partition(String v) {
            partition = v;
            return this;
        }

        /**
         * A text file, or a directory of them, at this path on every node (a relative path is taken against this
         * process's working directory); empty = the built-in corpus. Each worker reads it as it sets up, not
         * {@link #build()}: a path missing there, unreadable or too short for the model's windows fails the job at
         * once with that reason, as do ranks that read different bytes there (each rank's size and SHA-256 are
         * compared before the first step); no restart is tried.
         */
        public Builder data(String path) {
            data = path;
            return this;
        }

        /**
         * The data as this process read it ({@link DataFingerprint#of}; null: not read here): the job also fails
         * before its first step when the workers' data differs from it, naming both.
         */
        public Builder expectedData(DataFingerprint fingerprint) {
            dataFingerprint = fingerprint == null ? "" : fingerprint.token();
            return this;
        }

        /** Longest a stage worker waits for an input before the step fails, a fault the job recovers from (>= 1 ms). */
        public Builder stepTimeoutMs(long v) {
            stepTimeoutMs = v;
            return this;
        }

        /**
         * Validation every {@code interval} steps (0: after the last step only),
         * {@code batches} (>= 1) batches each.
         */
        public Builder validation(int interval, int batches) {
            evalInterval = interval;
            evalBatches = batches;
            evalOverAll = false;
            return this;
        }

        /**
         * Exact validation every {@code interval} steps (0: after the last step only): the mean loss over every
         * non-overlapping window of the validation split.
         */
        public Builder validationOverAll(int interval) {
            evalInterval = interval;
            evalBatches = ValidationPlan.ALL;
            evalOverAll = true;
            return this;
        }

        /** Data-parallel gradient bucket size in bytes (>= 4): buckets are all-reduced while backward goes on. */
        public Builder bucketBytes(long v) {
            bucketBytes = v;
            return this;
        }

        /**
         * ZeRO stage over the data-parallel group: 0 (every replica holds all optimizer state), 1
         * (AdamW's moments split over the replicas), 2 (the reduced gradients too).
         */
        public Builder zero(int stage) {
            zero = stage;
            return this;
        }

        /** Activation recomputation: {@code none}, {@code selective} or {@code full}. */
        public Builder recompute(String mode) {
            recompute = mode;
            return this;
        }

        /** Wire format of the data-parallel gradient reduction: {@code none}, {@code bf16} or {@code int8-ef}. */
        public Builder gradCompression(String format) {
            gradCompression = format;
            return this;
        }

        /**
         * Under tensor parallelism, also splits the residual stream (LayerNorm, dropout-free regions)
         * by tokens over the tp group: reduce-scatter and all-gather instead of all-reduce. No effect at tp 1.
         */
        public Builder sequenceParallel(boolean on) {
            sequenceParallel = on;
            return this;
        }

        /**
         * The steps {@code first..last} (1-based, inclusive) whose timelines the submitter receives as
         * {@link JobEvent.StepTrace} events; by default the last step only.
         */
        public Builder traceSteps(long first, long last) {
            traceFirst = first;
            traceLast = last;
            return this;
        }

        /** {@code cpu}, {@code cuda} or {@code auto}, for every worker. */
        public Builder device(String v) {
            device = v;
            return this;
        }

        /**
         * Trains the user's own model instead of GPT: {@code factory} builds each stage (a public
         * class with a public no-argument constructor, on every node's class path). The model
         * preset still gives the data's vocabulary and sequence length, the width and the number
         * of layers that stages split. A cluster runs it only if the class is listed in its nodes'
         * {@code troupe.cluster.allowed-stage-modules}; otherwise the job fails before any work.
         */
        public Builder stageModules(Class<? extends StageModuleFactory> factory) {
            moduleFactory = factory == null ? null : factory.getName();
            return this;
        }

        /**
         * Commits a checkpoint every {@code interval} steps (and after the last) under {@code dir},
         * a directory every node can reach (a relative path is taken against this process's working directory);
         * a job whose {@code dir} already holds a commit resumes there.
         * {@code interval} 0 takes the cluster's {@code troupe.recovery.checkpoint-interval}; {@code dir} ""
         * its {@code troupe.recovery.job-root}, in a directory of the job's own.
         */
        public Builder checkpoints(int interval, String dir) {
            checkpointInterval = interval;
            checkpointDir = dir;
            return this;
        }

        /**
         * The job, validated as the coordinator will validate it.
         *
         * @throws IllegalArgumentException saying what is wrong, with the bad value
         */
        public TrainingJob build() {
            try {
                nonNull("model", model, "layout", layout, "schedule", schedule, "partition", partition, "data", data,
                    "device", device, "stage-modules", moduleFactory, "recompute", recompute, "grad-compression",
                    gradCompression, "checkpoint directory", checkpointDir);
                String dataPath = absolute("data", data);
                String checkpoints = absolute("checkpoint directory", checkpointDir);
                if (!evalOverAll && evalBatches < 1) {
                    throw new IllegalArgumentException("eval_batches must be >= 1 (validationOverAll for every window):"
                        + " eval_batches=" + evalBatches);
                }
                GptConfig shape = GptConfig.preset(model);
                int batch = JobDefaults.batchSize(batchSize, shape);
                int v = JobDefaults.virtualStages(virtualStages, schedule);
                int micro = JobDefaults.microbatches(microbatches, Layout.parse(layout, v), batch);
                int warmupSteps = JobDefaults.warmupSteps(warmup, steps);
                JobRequest request = new JobRequest(model, layout, v, schedule, micro, batch, steps, lr, minLr,
                    warmupSteps,
                    gradClip, seed, partition, dataPath, checkpointInterval, checkpoints, stepTimeoutMs, evalInterval,
                    evalBatches, bucketBytes, device, moduleFactory, zero, recompute, gradCompression,
                    sequenceParallel, traceFirst, traceLast, dataFingerprint);
                JobSpecs.toSpec(request, 1);
                return new TrainingJob(request);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("bad training job: " + e.getMessage(), e);
            }
        }

        /**
         * {@code path} made absolute against this process's working directory ("" stays ""): the nodes, whose
         * working directories differ from the submitter's, all read the same path.
         */
        private static String absolute(String name, String path) {
            if (path.isEmpty()) {
                return path;
            }
            try {
                return java.nio.file.Path.of(path).toAbsolutePath().normalize().toString();
            } catch (java.nio.file.InvalidPathException e) {
                throw new IllegalArgumentException(name + " is not a path: " + name + "=" + path + " ("
                    + e.getReason() + ")", e);
            }
        }

        /** Refuses the first null among {@code namesAndValues} (name, value, name, value, ...) by its name. */
        private static void nonNull(Object... namesAndValues) {
            for (int i = 0; i < namesAndValues.length; i += 2) {
                if (namesAndValues[i + 1] == null) {
                    throw new IllegalArgumentException(namesAndValues[i] + " must not be null");
                }
            }
        }
    }
}
