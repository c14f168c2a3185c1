/** The Pekko control plane, schedules and the CLI; the public Java API is in {@code api}. */
package io.troupe.actors;
