/** Single-device training: the step loop, metrics, checkpoint capture and restore. */
package io.troupe.models.train;
