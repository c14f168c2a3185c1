package io.troupe.models.parallel;

import io.troupe.models.parallel.tp.TensorParallelSplit;

/**
 * How one parameter is held across the members of a tensor-parallel group.
 * <ul>
 *   <li>{@link Split}: member i holds its shard (a column-parallel weight and bias, a row-parallel
 *       weight, a vocabulary-parallel table); its gradient is complete on its own member.</li>
 *   <li>{@link Replicated}: every member holds the whole tensor (LayerNorms, the bias of a
 *       row-parallel layer, position embeddings). Without sequence parallelism every member computes
 *       the same gradient; with it each member's gradient covers only its tokens and must be summed
 *       over the tp group before the optimizer step ({@code gradientPartial}). Either way the
 *       tensor counts once in the global gradient norm.</li>
 * </ul>
 */
public sealed interface TensorParallelPlacement permits TensorParallelPlacement.Split,
    TensorParallelPlacement.Replicated {

    /** Member i holds {@code split}'s shard i. */
    record Split(TensorParallelSplit split) implements TensorParallelPlacement {
    }

    /**
     * Every member holds the whole tensor.
     *
     * @param gradientPartial each member's gradient is a partial sum to all-reduce over tp (sequence parallelism)
     */
    record Replicated(boolean gradientPartial) implements TensorParallelPlacement {
    }

    static TensorParallelPlacement split(int dim, int parts) {
        return new Split(new TensorParallelSplit(dim, parts));
    }

    static TensorParallelPlacement replicated() {
        return new Replicated(false);
    }
}
