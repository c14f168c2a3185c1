package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.ActorSystem;
import org.apache.pekko.cluster.Cluster;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Only nodes that speak this build's control-plane protocol join: a node naming another version,
 * or none, is refused by the members (both versions named, counted) and shuts itself down, and the
 * cluster stays as it was. Real nodes on 127.0.0.1.
 */
@Timeout(120)
class ClusterAdmissionTest {
    private final List<AutoCloseable> open = new ArrayList<>();

    @AfterEach
    void closeAll() throws Exception {
        for (int i = open.size() - 1; i >= 0; i--) {
            open.get(i).close();
        }
    }

    @Test
    void shouldNameBothVersionsWhenRefusing() {
        Config cluster = ConfigFactory.parseString("troupe.cluster.protocol-version = 1");
        assertNull(ProtocolVersionCheck.problem(ConfigFactory.parseString("troupe.cluster.protocol-version = 1"),
            cluster));
        String p = ProtocolVersionCheck.problem(ConfigFactory.parseString("troupe.cluster.protocol-version = 7"),
            cluster);
        assertTrue(p.contains("version 7") && p.contains("version 1"), p);
        String none = ProtocolVersionCheck.problem(ConfigFactory.empty(), cluster);
        assertTrue(none.contains("names no troupe protocol version") && none.contains("version 1"), none);
    }

    record Before(int rank, String endpoint) {
    }

    /** The same message with one more component: another encoding. */
    record After(int rank, String endpoint, int pieceShift) {
    }

    enum Kind { A, B }

    @Test
    void shouldFingerprintTheEncodingsSoAChangedMessageChangesTheAdvertisedVersion() {
        String before = ProtocolVersionCheck.fingerprint(List.of(int[].class, Before.class, Kind.class));
        assertEquals(before, ProtocolVersionCheck.fingerprint(List.of(int[].class, Before.class, Kind.class)),
            "the same classes give the same fingerprint");
        assertNotEquals(before, ProtocolVersionCheck.fingerprint(List.of(int[].class, After.class, Kind.class)),
            "a component added changes it");
        assertNotEquals(before, ProtocolVersionCheck.fingerprint(List.of(Before.class, int[].class, Kind.class)),
            "so does another registration order (another Kryo id)");
        assertTrue(ProtocolVersionCheck.ADVERTISED.equals(ProtocolVersionCheck.PROTOCOL_VERSION + "/"
            + ProtocolVersionCheck.fingerprint(KryoRegistrar.classes())), ProtocolVersionCheck.ADVERTISED);
        Config cluster = ConfigFactory.parseString("troupe.cluster.protocol-version = \"2/" + before + "\"");
        String p = ProtocolVersionCheck.problem(ConfigFactory.parseString("troupe.cluster.protocol-version = \"2/"
            + ProtocolVersionCheck.fingerprint(List.of(int[].class, After.class, Kind.class)) + "\""), cluster);
        assertTrue(p != null && p.contains(before), "a node whose messages differ is refused, naming both: " + p);
    }

    @Test
    void shouldRefuseANodeOfAnotherProtocolVersionOrNone() throws Exception {
        NodeSettings base = NodeSettings.from(ConfigFactory.load()).withPort(0);
        TroupeNode first = TroupeNode.start(base.withRoles(List.of("coordinator"), 0).withSeeds(List.of()),
            ConfigFactory.load(), null);
        open.add(first);

        String checker = "pekko.cluster.configuration-compatibility-check.checkers.troupe-protocol = \""
            + ProtocolVersionCheck.class.getName() + "\"";
        for (String versionLine : List.of("troupe.cluster.protocol-version = 999\n" + checker, "")) {
            ActorSystem stranger = ActorSystem.create("troupe", ConfigFactory.parseString(String.join("\n",
                "pekko.actor.provider = cluster",
                "pekko.remote.artery.canonical.hostname = 127.0.0.1",
                "pekko.remote.artery.canonical.port = 0",
                "pekko.cluster.seed-nodes = [\"pekko://troupe@" + first.hostPort() + "\"]",
                "pekko.cluster.jmx.multi-mbeans-in-same-jvm = on",
                // Everything else as a Troupe node has it, so only the protocol version differs.
                "pekko.cluster.downing-provider-class = \"org.apache.pekko.cluster.sbr.SplitBrainResolverProvider\"",
                "pekko.coordinated-shutdown.exit-jvm = off",
                "pekko.loglevel = WARNING",
                versionLine)).withFallback(ConfigFactory.load()));
            open.add(() -> {
                stranger.terminate();
                stranger.getWhenTerminated().toCompletableFuture().get(30, TimeUnit.SECONDS);
            });
            // Refused, the stranger shuts itself down; it never became a member.
            stranger.getWhenTerminated().toCompletableFuture().get(60, TimeUnit.SECONDS);
        }
        assertEquals(2, first.refusedInputs().count(RefusedInputs.Reason.PROTOCOL_VERSION));
        var members = Cluster.get(org.apache.pekko.actor.typed.javadsl.Adapter.toClassic(first.system())).state()
            .getMembers();
        int count = 0;
        for (var m : members) {
            count++;
            assertEquals(first.hostPort(), m.address().getHost().get() + ":" + m.address().getPort().get());
        }
        assertEquals(1, count, "the cluster should still be the first node alone");
    }
}
