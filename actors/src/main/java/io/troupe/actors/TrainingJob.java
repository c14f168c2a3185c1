package io.troupe.actors;

import io.troupe.actors.cluster.JobRequest;

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

        public TrainingJob build() {
            return new TrainingJob(new JobRequest(model, layout, virtualStages, schedule, microbatches, batchSize, steps, lr,
                minLr, warmup, gradClip, seed, partition, data, 0, "", stepTimeoutMs));
        }
    }
}
