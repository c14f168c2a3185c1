package io.troupe.actors.cluster;

import io.troupe.actors.engine.LocalPipelineEngine;
import io.troupe.actors.engine.PipelineJobSpec;
import io.troupe.actors.engine.StageWorker;
import io.troupe.actors.schedule.SchedulePolicy;
import io.troupe.collectives.CollectiveAgent;
import io.troupe.collectives.CollectiveGroup;
import io.troupe.collectives.CollectiveSettings;
import io.troupe.collectives.Communicator;
import io.troupe.models.data.Batches;
import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.transport.JobIdentity;
import io.troupe.runtime.transport.ReceiveSlot;
import io.troupe.runtime.transport.TransportEndpoint;
import io.troupe.runtime.transport.TransportNode;
import io.troupe.runtime.transport.TransportSettings;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.function.IntConsumer;
import org.agrona.concurrent.BackoffIdleStrategy;

/**
 * Test fixture: the data-parallel gradient path of a 2x1 job (two replicas of the tiny GPT, one pipeline stage each)
 * in this JVM, as the cluster engine wires it: per replica a {@link StageWorker} of {@link ProbedGptStages} on the
 * job's device and its {@link DataParallelGradients}, opened over a dp communicator of a collective agent of its own
 * (running on its own thread) on one loopback transport, each replica driven on a device thread of its own. A step
 * runs both replicas' schedules at once and records what a test asks about the gradient path on the way.
 */
final class DataParallelReplicas implements AutoCloseable {
    static final int REPLICAS = 2;

    /** What one replica's step saw. */
    static final class StepRecord {
        /** Parameter reports of the step's weight-gradient passes, in order: the buckets launched as each came. */
        final List<Integer> launchedAtReport = new ArrayList<>();
        /** Buckets launched when the schedule was over, before {@link DataParallelGradients#awaitReduced}. */
        int launchedAfterSchedule;
        /** The replica's own gradients after the schedule (read on a GPU only: on a CPU they are being reduced). */
        float[] local;
        /** The gradients after {@link DataParallelGradients#awaitReduced}. */
        float[] reduced;
    }

    private final TransportNode transport;
    private final List<CollectiveAgent> agents = new ArrayList<>();
    private final List<ExecutorService> deviceThreads = new ArrayList<>();
    private final Communicator[] dataParallel = new Communicator[REPLICAS];
    private final StageWorker[] stages = new StageWorker[REPLICAS];
    private final CpuDevice[] scratch = new CpuDevice[REPLICAS];
    private final DataParallelGradients[] gradients = new DataParallelGradients[REPLICAS];
    private final PipelineJobSpec spec;
    private final SchedulePolicy policy;
    private final Batches train;

    /**
     * Builds both replicas of the 2x1 tiny GPT on {@code device} ("cpu", "cuda") under ZeRO {@code zero}, with buckets
     * of {@code bucketBytes} (small enough for several per chunk).
     */
    DataParallelReplicas(String device, int zero, long bucketBytes, String checkpointDir) throws Exception {
        JobRequest r = new JobRequest("tiny", "2x1", 1, "1f1b", 2, 8, 4, 3e-3f, 3e-4f, 1, 1f, 7, "", "", 0,
            checkpointDir, 60_000, 0, 1, bucketBytes, device, ProbedGptStages.class.getName(), zero, "none", "none",
            false);
        this.spec = JobSpecs.toSpec(r, 1);
        this.policy = LocalPipelineEngine.policyFor(spec);
        this.train = Batches.shuffled(JobSpecs.data(r).train(), spec.train().model().seqLen(), spec.train().seed());
        this.transport = TransportNode.launch(TransportSettings.defaults(), Throwable::printStackTrace);
        try {
            JobIdentity job = JobIdentity.newJob(1);
            TransportEndpoint[] endpoints = new TransportEndpoint[REPLICAS];
            for (int k = 0; k < REPLICAS; k++) {
                CollectiveAgent a = CollectiveAgent.open(transport, "replica-" + k, -1, 0, ReceiveSlot::release,
                    Throwable::printStackTrace);
                agents.add(a);
                a.worker().assign(k, job);
                endpoints[k] = a.worker().endpoint();
                deviceThreads.add(Executors.newSingleThreadExecutor(t -> new Thread(t, "replica-device")));
            }
            for (int k = 0; k < REPLICAS; k++) {
                dataParallel[k] = agents.get(k).communicator(new CollectiveGroup(job.epoch(), 0, new int[] {0, 1}, k,
                    endpoints), CollectiveSettings.defaults());
                agents.get(k).start(new BackoffIdleStrategy(64, 16, 1_000, 1_000_000));
            }
            onBoth(k -> {
                stages[k] = new StageWorker(spec, k, 0, spec.train().seed());
                scratch[k] = new CpuDevice(1);
                gradients[k] = new DataParallelGradients(spec, stages[k], scratch[k]);
                gradients[k].open(dataParallel[k], bucketBytes);
            });
        } catch (Exception | Error e) {
            close();
            throw e;
        }
    }

    /** Buckets of replica {@code k}'s chunk. */
    int bucketCount(int k) {
        return gradients[k].bucketer(0).bucketCount();
    }

    /** Replica {@code k}'s bucketer of its chunk. */
    io.troupe.collectives.bucket.GradientBucketer bucketer(int k) {
        return gradients[k].bucketer(0);
    }

    /**
     * Runs step {@code step} on both replicas at once (schedule, then the wait for the reduced gradients), each
     * recording its stage's parameter reports and the gradients (its own with {@code readLocal}) as it goes.
     */
    StepRecord[] step(long step, boolean readLocal) throws Exception {
        StepRecord[] out = new StepRecord[REPLICAS];
        onBoth(k -> {
            StepRecord rec = new StepRecord();
            StageWorker w = stages[k];
            DataParallelGradients g = gradients[k];
            IntConsumer probe = i -> rec.launchedAtReport.add(g.bucketer(0).launched());
            ProbedGptStages.onParameterDone(w.chunk(0), probe);
            try {
                w.runStep(step, policy, train, System.nanoTime());
            } finally {
                ProbedGptStages.onParameterDone(w.chunk(0), null);
            }
            rec.launchedAfterSchedule = g.bucketer(0).launched();
            if (readLocal) {
                rec.local = w.chunk(0).grads().toFloatArray();
            }
            g.awaitReduced();
            rec.reduced = w.chunk(0).grads().toFloatArray();
            out[k] = rec;
        });
        return out;
    }

    /** Runs {@code body} for each replica on its device thread, both at once, and waits (2 minutes at most). */
    private void onBoth(ReplicaBody body) throws Exception {
        List<Future<?>> done = new ArrayList<>();
        for (int k = 0; k < REPLICAS; k++) {
            int replica = k;
            done.add(deviceThreads.get(k).submit(() -> {
                body.run(replica);
                return null;
            }));
        }
        for (Future<?> f : done) {
            f.get(2, TimeUnit.MINUTES);
        }
    }

    @FunctionalInterface
    private interface ReplicaBody {
        void run(int replica) throws Exception;
    }

    /** Releases the communicators, then closes the stages, the host copies, the agents and the transport. */
    @Override
    public void close() throws Exception {
        for (int k = 0; k < REPLICAS; k++) {
            if (dataParallel[k] != null) {
                dataParallel[k].abort("the test ends");
                agents.get(k).release(dataParallel[k]);
            }
        }
        try {
            if (!deviceThreads.isEmpty()) {
                onBoth(k -> {
                    if (stages[k] != null) {
                        stages[k].close();
                    }
                    if (gradients[k] != null) {
                        gradients[k].close();
                    }
                    if (scratch[k] != null) {
                        scratch[k].close();
                    }
                });
            }
        } finally {
            for (ExecutorService e : deviceThreads) {
                e.shutdownNow();
                e.awaitTermination(30, TimeUnit.SECONDS);
            }
            for (CollectiveAgent a : agents) {
                a.close();
            }
            transport.close();
        }
    }
}
