/** The Pekko control plane, schedules, the public Java API and the CLI. */
package io.troupe.actors;
