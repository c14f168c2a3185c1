/** AdamW, learning-rate schedules and gradient clipping. */
package io.troupe.models.optim;
