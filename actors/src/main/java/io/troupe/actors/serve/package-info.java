/**
 * Serving over HTTP: an OpenAI-style completions endpoint (pekko-http), a scheduler actor doing
 * continuous batching over the paged KV cache, and Prometheus metrics.
 */
package io.troupe.actors.serve;
