/**
 * The public Java API: {@link io.troupe.actors.api.Troupe} starts or joins a cluster, a
 * {@link io.troupe.actors.api.TrainingJob} describes a job, its {@link io.troupe.actors.api.JobHandle}
 * follows it through {@link io.troupe.actors.api.JobEvent}s.
 */
package io.troupe.actors.api;
