package io.troupe.actors.cluster;

import io.troupe.actors.api.JobEvent;
import java.util.List;

/** The message classes that cross nodes, in registration order (append only). */
final class ClusterProtocol {
    private ClusterProtocol() {
    }

    static final List<Class<?>> MESSAGES = List.of(
        JobRequest.class,
        WorkerDescription.class,
        JobEvent.Started.class,
        JobEvent.StepCompleted.class,
        JobEvent.Finished.class,
        JobEvent.Failed.class,
        CoordinatorActor.SubmitJob.class,
        CoordinatorActor.WorkerInfo.class,
        CoordinatorActor.Ready.class,
        CoordinatorActor.StepDone.class,
        CoordinatorActor.WorkerFailed.class,
        WorkerActor.Describe.class,
        WorkerActor.Assign.class,
        WorkerActor.RunSteps.class,
        WorkerActor.Abort.class,
        WorkerActor.WriteCheckpoint.class,
        CoordinatorActor.CheckpointWritten.class,
        WorkerTrace.class,
        WorkerTrace[].class,
        JobEvent.StepTrace.class,
        WorkerActor.Evaluate.class,
        CoordinatorActor.EvalDone.class,
        CoordinatorActor.EvalDone.class,
        CoordinatorActor.CancelJob.class,
        io.troupe.runtime.transport.JobIdentity.class,
        CoordinatorActor.Quiesced.class,
        JobEvent.Recovering.class,
        JobEvent.Recovered.class,
        SnapshotPlan.class,
        WorkerActor.Committed.class,
        WorkerActor.DropSnapshots.class,
        WorkerActor.Release.class,
        JobEvent.Accepted.class);
}
