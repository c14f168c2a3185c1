package io.troupe.actors.api;

import io.troupe.actors.cluster.JobRequest;
import io.troupe.models.StageModuleFactory;

/** A training job for {@link Troupe#submit}; build it with {@link #builder()}. Defaults: small GPT, 1x1, 1f1b. */
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

    /** Fluent builder; {@link #build()} validates nothing the coordinator does not check again. */
    public static final class Builder {
        private String model = "small";
        private String layout = "1x1x1";
        private int virtualStages = 1;
        private String schedule = "1f1b";
        private int microbatches = 1;
        private int batchSize = 16;
        private int steps = 100;
        private float lr = 1e-3f;
        private float minLr = 1e-4f;
        private int warmup = 10;
        private float gradClip = 1f;
        private long seed = 1337;
        private String partition = "";
        private String data = "";
        private long stepTimeoutMs = 60_000;
        private int evalInterval;
        private int evalBatches = 1;
        private long bucketBytes = JobRequest.DEFAULT_BUCKET_BYTES;
        private String device = "cpu";
        private String moduleFactory = "";
        private int checkpointInterval;
        private String checkpointDir = "";

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

        /** Validation every {@code interval} steps (0: after the last step only), {@code batches} batches each. */
        public Builder validation(int interval, int batches) {
            evalInterval = interval;
            evalBatches = batches;
            return this;
        }

        /** Data-parallel gradient bucket size: buckets are all-reduced while backward goes on. */
        public Builder bucketBytes(long v) {
            bucketBytes = v;
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
         * of layers that stages split.
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

        public TrainingJob build() {
            return new TrainingJob(new JobRequest(model, layout, virtualStages, schedule, microbatches, batchSize, steps, lr,
                minLr, warmup, gradClip, seed, partition, data, checkpointInterval, checkpointDir, stepTimeoutMs, evalInterval,
                evalBatches, bucketBytes, device, moduleFactory));
        }
    }
}
