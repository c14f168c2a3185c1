/**
 * DDP-style gradient bucketing: all-reduce each bucket of parameter gradients as soon as its last gradient is ready.
 */
package io.troupe.collectives.bucket;
