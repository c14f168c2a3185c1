package io.troupe.actors.cluster;

/**
 * A job a worker cannot run however often it is restarted: the job's data is missing where the worker reads it,
 * unreadable, or too short for the model's windows. The worker reports it as an incurable
 * {@link CoordinatorActor.WorkerFailed}, and the coordinator fails the job at once with its message instead of
 * recovering into the same refusal until {@code troupe.recovery.max-restarts} runs out.
 */
final class IncurableJobException extends RuntimeException {
    IncurableJobException(String message, Throwable cause) {
        super(message, cause);
    }
}
