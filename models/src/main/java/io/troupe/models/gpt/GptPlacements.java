package io.troupe.models.gpt;

import io.troupe.models.parallel.TensorParallelPlacement;
import io.troupe.models.parallel.tp.TensorParallelSplit;

/**
 * Where each GPT parameter lives under tensor parallelism (Megatron's split):
 * <pre>
 *   tok_emb.weight (V, C)        split dim 0            vocabulary-parallel embedding
 *   pos_emb.weight (T, C)        replicated             (all replicated tensors: partial gradients
 *   ln1, ln2, ln_f               replicated              under sequence parallelism)
 *   attn.qkv.weight (3C, C)      split dim 0, 3 parts   column-parallel by heads: [q_i; k_i; v_i]
 *   attn.qkv.bias (3C)           split dim 0, 3 parts
 *   attn.proj.weight (C, C)      split dim 1            row-parallel
 *   attn.proj.bias (C)           replicated             added once after the reduction
 *   mlp.fc.weight (4C, C)        split dim 0            column-parallel
 *   mlp.fc.bias (4C)             split dim 0
 *   mlp.proj.weight (C, 4C)      split dim 1            row-parallel
 *   mlp.proj.bias (C)            replicated
 *   lm_head.weight (V, C)        split dim 0            vocabulary-parallel head, parallel cross-entropy
 * </pre>
 */
public final class GptPlacements {
    private GptPlacements() {
    }

    /** The placement of the parameter called {@code name}. */
    public static TensorParallelPlacement of(String name, boolean sequenceParallel) {
        if (name.equals("tok_emb.weight") || name.equals("lm_head.weight") || name.endsWith(".mlp.fc.weight")
            || name.endsWith(".mlp.fc.bias")) {
            return new TensorParallelPlacement.Split(TensorParallelSplit.along(0));
        }
        if (name.endsWith(".attn.qkv.weight") || name.endsWith(".attn.qkv.bias")) {
            return new TensorParallelPlacement.Split(new TensorParallelSplit(0, 3));
        }
        if (name.endsWith(".attn.proj.weight") || name.endsWith(".mlp.proj.weight")) {
            return new TensorParallelPlacement.Split(TensorParallelSplit.along(1));
        }
        // Under sequence parallelism every replicated parameter (position rows included) sees only
        // its member's tokens, so its gradient is partial.
        return new TensorParallelPlacement.Replicated(sequenceParallel);
    }

    /**
     * Refuses a tp degree the model cannot be split by, naming the numbers: heads (attention is split
     * by heads), the vocabulary (embedding and head) and the MLP width.
     */
    public static void check(GptConfig cfg, int tp) {
        if (tp < 1) {
            throw new IllegalArgumentException("tp must be >= 1: tp=" + tp);
        }
        if (cfg.nHead() % tp != 0) {
            throw new IllegalArgumentException("attention heads must be divisible by tp: n_head=" + cfg.nHead()
                + ", tp=" + tp);
        }
        if (cfg.vocabSize() % tp != 0) {
            throw new IllegalArgumentException("vocabulary must be divisible by tp: vocab_size=" + cfg.vocabSize()
                + ", tp=" + tp);
        }
        if (4 * cfg.dModel() % tp != 0) {
            throw new IllegalArgumentException("MLP width must be divisible by tp: mlp width=" + 4 * cfg.dModel()
                + ", tp=" + tp);
        }
    }
}
