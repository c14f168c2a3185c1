package io.troupe.runtime.cuda;

/**
 * Which causal-attention forward {@link CudaDevice} runs, and so what its {@code saved} buffer holds.
 * The backward must run under the same choice as the forward that filled {@code saved}.
 */
public enum AttentionKernel {
    /** Materialises the softmax probabilities (B, H, T, T) in {@code saved}, like the CPU backend. */
    SIMPLE,
    /**
     * Fused, FlashAttention-style: never builds the T x T matrix in the forward; {@code saved} holds one
     * log-sum-exp per row (B, H, T), and the backward rebuilds the probabilities from it. Needs
     * headDim <= 128 (larger heads fall back to SIMPLE).
     */
    FLASH
}
