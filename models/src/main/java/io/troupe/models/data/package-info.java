/** Byte-level token data: corpora, deterministic batch sampling keyed by (seed, step, sample index). */
package io.troupe.models.data;
