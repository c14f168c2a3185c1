package io.troupe.actors.cli;

import io.troupe.models.train.RunOutputs;
import java.io.PrintStream;
import java.nio.file.Path;

/**
 * Ctrl-C or SIGTERM to a {@code troupe train} that runs its steps in this process (the single-device trainer,
 * {@code --engine in-process}): the run ends after the step in progress, says where it stopped and which
 * checkpoint to {@code --resume} from ({@link ClusterJobs#stopLine}, the cluster engine's line), and exits with
 * the signal's status (130, 143). It writes no checkpoint of its own: the last one committed is where a resumed
 * run continues. The step loop asks {@link #requested()} between steps and reports each commit
 * ({@link #checkpointAt}).
 *
 * <p>Threading: everything but the signal's handler on the command's thread.
 */
final class LocalTrainStop implements AutoCloseable {
    private final StopSignal signal;
    private long committedStep;
    private Path resumeFrom;

    private LocalTrainStop(StopSignal signal) {
        this.signal = signal;
    }

    /** Handles SIGINT and SIGTERM from now on ({@link StopSignal}) until {@link #close()}. */
    static LocalTrainStop install(TrainSettings s) {
        return new LocalTrainStop(StopSignal.install("troupe-train", ClusterJobs.stopWaitMs(s)));
    }

    /**
     * The checkpoint a resumed run would continue from: the one of {@code step} in {@code runDir}, which this run
     * committed, or which it resumed ({@code --resume}) and has not yet followed with a commit of its own.
     */
    void checkpointAt(long step, Path runDir) {
        committedStep = step;
        resumeFrom = runDir.toAbsolutePath().normalize();
    }

    /** Whether the user asked the run to stop. */
    boolean requested() {
        return signal.requested();
    }

    /** Prints the stop line of a run that reached the last step {@code outputs} recorded; returns the exit code. */
    int report(RunOutputs outputs, long totalSteps, PrintStream out) {
        out.println(ClusterJobs.stopLine(outputs, totalSteps, committedStep, "scripts/troupe train", resumeFrom));
        out.flush();
        return signal.signalStatus();
    }

    @Override
    public void close() {
        signal.stopped();
    }
}
