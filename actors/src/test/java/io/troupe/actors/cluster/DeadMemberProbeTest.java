package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.runtime.testkit.RefusingPort;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** A closed port reads as a gone process; a listening one, even one that never accepts, does not. */
@Timeout(30)
class DeadMemberProbeTest {
    @Test
    void shouldCallAPortRefusedOnlyWhenNothingListensThere() throws Exception {
        try (ServerSocket listening = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            // the kernel completes the handshake for a process that never calls accept (a paused one)
            assertFalse(DeadMemberProbe.refusesConnections("127.0.0.1", listening.getLocalPort(),
                Duration.ofMillis(500)));
        }
        // a port held without a listener for the test: a closed one could be taken by another process meanwhile
        try (RefusingPort dead = RefusingPort.open()) {
            assertTrue(DeadMemberProbe.refusesConnections("127.0.0.1", dead.port(), Duration.ofMillis(500)),
                "nothing listens on " + dead.port());
            assertFalse(DeadMemberProbe.refusesConnections("no-such-host.invalid", dead.port(), Duration.ofMillis(500)),
                "an unknown host is no proof that the process is gone");
        }
    }
}
