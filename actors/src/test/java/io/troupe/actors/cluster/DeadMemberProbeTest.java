package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import io.troupe.runtime.testkit.RefusingPort;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A closed port reads as a gone process; a listening one, even one that never accepts, does not. Each member probes
 * the members after it in address order, so each is probed by as many others whatever the cluster's size.
 */
@Timeout(30)
class DeadMemberProbeTest {
    @Test
    void shouldProbeTheMembersAfterItselfInTheRing() {
        List<String> ring = List.of("a", "b", "c", "d", "e");
        assertEquals(List.of("e", "a"), DeadMemberProbe.successors(ring, 3, 2), "wrapping around");
        assertEquals(List.of("b", "c"), DeadMemberProbe.successors(ring, 0, 2));
        assertEquals(List.of("a"), DeadMemberProbe.successors(List.of("a", "b"), 1, 2), "never itself");
        assertEquals(List.of(), DeadMemberProbe.successors(List.of("a"), 0, 2), "alone: none");
        assertEquals(List.of(), DeadMemberProbe.successors(ring, -1, 2), "not in the ring (not up yet): none");
        // every member is probed by exactly two others
        java.util.Map<String, Integer> probedBy = new java.util.HashMap<>();
        for (int i = 0; i < ring.size(); i++) {
            DeadMemberProbe.successors(ring, i, 2).forEach(m -> probedBy.merge(m, 1, Integer::sum));
        }
        assertEquals(java.util.Map.of("a", 2, "b", 2, "c", 2, "d", 2, "e", 2), probedBy);
    }

    @Test
    void shouldReadTheProbeIntervalAndRefuseWhatCannotBeMeant() {
        assertEquals(Duration.ofMillis(500), DeadMemberProbe.interval(ConfigFactory.load()), "reference.conf");
        assertEquals(Duration.ZERO, DeadMemberProbe.interval(interval("off")));
        assertEquals(Duration.ofSeconds(2), DeadMemberProbe.interval(interval("2s")));
        for (String bad : List.of("0s", "-1s", "often")) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> DeadMemberProbe.interval(interval(bad)));
            assertTrue(e.getMessage().contains("port-probe-interval=" + bad), e.getMessage());
        }
    }

    private static com.typesafe.config.Config interval(String value) {
        return ConfigFactory.parseString(DeadMemberProbe.INTERVAL_KEY + " = \"" + value + "\"");
    }

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
