/**
 * Text generation from trained GPT checkpoints: a KV-cached forward over a paged cache, int8
 * weight-only linears, sampling, and the continuous-batching policy a serving actor drives. Every
 * decoding kernel here is row-independent, so a request's tokens do not depend on its batch.
 */
package io.troupe.models.infer;
