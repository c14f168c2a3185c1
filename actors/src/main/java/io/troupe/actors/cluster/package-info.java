/** The Pekko control plane: node settings, the Kryo wire format for cross-node messages, coordinator and workers. */
package io.troupe.actors.cluster;
