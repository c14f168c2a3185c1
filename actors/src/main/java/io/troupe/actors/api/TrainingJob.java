package io.troupe.actors.api;

import com.typesafe.config.Config;
import io.troupe.actors.cluster.JobDefaults;
import io.troupe.actors.cluster.JobRequest;
import io.troupe.actors.cluster.JobSpecs;
import io.troupe.models.StageModuleFactory;
import io.troupe.models.data.ValidationPlan;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.parallel.Layout;

/** A training job for {@link Troupe#submit}; build it with {@link #builder()} (defaults: {@code reference.conf}). */
public final class TrainingJob {
    private final JobRequest request;

    private TrainingJob(JobRequest request) {
        this.request = request;
    }

    public JobRequest request() {
        return request;
    }

    public static Builder builder() {
        return new Builder();
    }

    /**
     * Fluent builder. Every setting starts at its default in {@code reference.conf}'s
     * {@code troupe.train} section, the same defaults {@code troupe train} uses (layout 2x2x1, 200
     * steps, warm-up 10% of steps, validation every 50 steps over 8 batches, device auto, ...);
     * batch size, micro-batches, warm-up and virtual stages left at their defaults are derived the
     * same way too. {@link #build()} validates the whole job.
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
            bucketBytes = t.getLong("bucket-kib") * 1024;
            device = t.getString("device");
            checkpointInterval = t.getInt("checkpoint-interval");
            zero = t.getInt("zero");
            recompute = t.getString("recompute");
            gradCompression = t.getString("grad-compression");
            sequenceParallel = t.getBoolean("sequence-parallel");
        }

        public Builder model(String v) {
            model = v;
            return this;
        }

        public Builder layout(String v) {
            layout = v;
            return this;
        }

        public Builder virtualStages(int v) {
            virtualStages = v;
            return this;
        }

        public Builder schedule(String v) {
            schedule = v;
            return this;
        }

        public Builder microbatches(int v) {
            microbatches = v;
            return this;
        }

        public Builder batchSize(int v) {
            batchSize = v;
            return this;
        }

        public Builder steps(int v) {
            steps = v;
            return this;
        }

        public Builder lr(float peak, float floor, int warmupSteps) {
            lr = peak;
            minLr = floor;
            warmup = warmupSteps;
            return this;
        }

        public Builder gradClip(float v) {
            gradClip = v;
            return this;
        }

        public Builder seed(long v) {
            seed = v;
            return this;
        }

        public Builder partition(String v) {
            partition = v;
            return this;
        }

        /** A text file on every node; empty = the built-in corpus. */
        public Builder data(String path) {
            data = path;
            return this;
        }

        public Builder stepTimeoutMs(long v) {
            stepTimeoutMs = v;
            return this;
        }

        /**
         * Validation every {@code interval} steps (0: after the last step only),
         * {@code batches} (>= 1) batches each.
         */
        public Builder validation(int interval, int batches) {
            if (batches < 1) {
                throw new IllegalArgumentException("bad training job: eval_batches must be >= 1 (validationOverAll for"
                    + " every window): eval_batches=" + batches);
            }
            evalInterval = interval;
            evalBatches = batches;
            return this;
        }

        /**
         * Exact validation every {@code interval} steps (0: after the last step only): the mean loss over every
         * non-overlapping window of the validation split.
         */
        public Builder validationOverAll(int interval) {
            evalInterval = interval;
            evalBatches = ValidationPlan.ALL;
            return this;
        }

        /** Data-parallel gradient bucket size: buckets are all-reduced while backward goes on. */
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
            moduleFactory = factory.getName();
            return this;
        }

        /**
         * Commits a checkpoint every {@code interval} steps (and after the last) under {@code dir},
         * a directory every node can reach; a job whose {@code dir} already holds a commit resumes there.
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
                GptConfig shape = GptConfig.preset(model);
                int batch = JobDefaults.batchSize(batchSize, shape);
                int v = JobDefaults.virtualStages(virtualStages, schedule);
                int micro = JobDefaults.microbatches(microbatches, Layout.parse(layout, v), batch);
                int warmupSteps = JobDefaults.warmupSteps(warmup, steps);
                JobRequest request = new JobRequest(model, layout, v, schedule, micro, batch, steps, lr, minLr,
                    warmupSteps,
                    gradClip, seed, partition, data, checkpointInterval, checkpointDir, stepTimeoutMs, evalInterval,
                    evalBatches, bucketBytes, device, moduleFactory, zero, recompute, gradCompression,
                    sequenceParallel, traceFirst, traceLast);
                JobSpecs.toSpec(request, 1);
                return new TrainingJob(request);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("bad training job: " + e.getMessage(), e);
            }
        }
    }
}
