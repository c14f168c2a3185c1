/** Node metrics: Micrometer meters of training, refusals and the JVM, served in Prometheus format. */
package io.troupe.actors.metrics;
