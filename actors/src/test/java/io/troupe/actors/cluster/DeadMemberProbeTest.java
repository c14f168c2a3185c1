package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

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
        int port;
        try (ServerSocket listening = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            port = listening.getLocalPort();
            // the kernel completes the handshake for a process that never calls accept (a paused one)
            assertFalse(DeadMemberProbe.refusesConnections("127.0.0.1", port, Duration.ofMillis(500)));
        }
        assertTrue(DeadMemberProbe.refusesConnections("127.0.0.1", port, Duration.ofMillis(500)),
            "nothing listens on " + port + " any more");
        assertFalse(DeadMemberProbe.refusesConnections("no-such-host.invalid", port, Duration.ofMillis(500)),
            "an unknown host is no proof that the process is gone");
    }
}
