/**
 * The step engine that runs dp × pp training with the schedule policies: stage workers with their
 * own device executor threads, activation and gradient hand-off, data-parallel gradient reduction,
 * global-norm clipping and the optimizer step. No Pekko here: the cluster's stage actors drive the
 * same pieces across nodes.
 */
package io.troupe.actors.engine;
