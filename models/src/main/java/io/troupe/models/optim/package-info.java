/**
 * AdamW, learning-rate schedules, gradient clipping, and {@link io.troupe.models.optim.StepTail}: the tail of every
 * training step.
 */
package io.troupe.models.optim;
