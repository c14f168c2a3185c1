/**
 * Megatron-style tensor parallelism: the tensor-parallel group, the conjugate region operators,
 * column- and row-parallel linears, the vocabulary-parallel embedding and cross-entropy.
 */
package io.troupe.models.parallel.tp;
