package io.troupe.actors.engine;

import io.troupe.runtime.tensor.Tensor;

/**
 * A notice to a stage worker: the activation ({@code gradient == false}) or the output gradient of
 * micro-batch {@code mb} for its virtual stage {@code v} is in {@code tensor}, a buffer the worker
 * owns; or a failure elsewhere that ends the step.
 */
record StageEvent(boolean gradient, int microbatch, int virtualStage, Tensor tensor, RuntimeException failure,
                  long arrivedNs) {
    StageEvent(boolean gradient, int microbatch, int virtualStage, Tensor tensor, RuntimeException failure) {
        this(gradient, microbatch, virtualStage, tensor, failure, System.nanoTime());
    }

    static StageEvent failed(RuntimeException e) {
        return new StageEvent(false, -1, -1, null, e);
    }
}
