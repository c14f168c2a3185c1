package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertFalse;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The nodes {@code troupe train} owns install no Pekko JVM shutdown hook (CoordinatedShutdown's would leave
 * the cluster, Artery's close the remoting transport, both at the signal, racing the owner's stop of the job).
 */
class EmbeddedNodesTest {

    @Test
    @Timeout(120)
    void shouldLeaveTheJvmShutdownToTheOwner() {
        try (EmbeddedNodes nodes = EmbeddedNodes.start(2, 1)) {
            assertFalse(nodes.first().system().classicSystem().settings().JvmShutdownHooks(),
                "pekko.jvm-shutdown-hooks");
        }
    }
}
