package io.troupe.actors.schedule;

/**
 * The decisions of one rank in one step: which action to start next, given the events seen so far.
 * The stage executor (and {@link PipelineSimulator}) drives it with three events and one question:
 *
 * <pre>
 *   activation for (mb, v) arrived  -> onInputArrived(mb, v)
 *   gradient for (mb, v) arrived    -> onGradArrived(mb, v)
 *   the device finished an action   -> onActionFinished(action)
 *   device free?                    -> next(nowUs): start the returned action, or stay idle on null
 * </pre>
 *
 * The inputs of model stage 0 (the data) and the last model stage's own loss gradient are implied:
 * no event is sent for them. The device runs one action at a time, so {@link #next} is called only
 * while no action is running; the returned action counts as started.
 *
 * <p>Threading: not thread-safe; one owner (the stage actor, or the simulator loop) calls it.
 */
public interface StagePolicy {

    /** The activation of micro-batch {@code mb} for this rank's virtual stage {@code v} has arrived. */
    void onInputArrived(int microbatch, int virtualStage);

    /** The output gradient of micro-batch {@code mb} for virtual stage {@code v} has arrived. */
    void onGradArrived(int microbatch, int virtualStage);

    /** The device finished {@code action}, which this policy returned from {@link #next}. */
    void onActionFinished(Action action);

    /**
     * The action to start now, or {@code null} to stay idle until the next event.
     *
     * @param nowUs the current time in microseconds since step start (used by deadlines)
     */
    Action next(double nowUs);

    /** True once every action of this rank for the step has finished. */
    boolean isDone();

    /**
     * The action this policy would start if its input were here, or {@code null} when it waits for
     * any input (or is done). Used to name what an idle rank waits for.
     */
    Action awaited();

    /** True when the last {@link #next} returned null only because admitting a forward would pass the memory budget. */
    boolean blockedByMemory();
}
