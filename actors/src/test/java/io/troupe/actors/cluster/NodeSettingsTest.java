package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import io.troupe.runtime.transport.TransportSettings;
import java.util.List;
import org.junit.jupiter.api.Test;

class NodeSettingsTest {

    @Test
    void shouldReadTransportDefaultsThatEqualTheCodeDefaults() {
        TransportSettings fromConf = TransportConfig.from(ConfigFactory.load());
        assertEquals(TransportSettings.defaults(), fromConf, "reference.conf and TransportSettings.defaults() agree");
    }

    @Test
    void shouldReadEveryTransportKey() {
        TransportSettings s = TransportConfig.from(ConfigFactory.parseString(
            "troupe.transport { ipc-crc = true, loopback-mtu = 8KiB, receiver-window = 1MiB }")
            .withFallback(ConfigFactory.load()));
        assertTrue(s.ipcCrcEnabled());
        assertEquals(8192, s.loopbackMtuBytes());
        assertEquals(1 << 20, s.receiverWindowBytes());
    }

    @Test
    void shouldBuildPekkoSettingsFromTroupeKeys() {
        NodeSettings s = NodeSettings.from(ConfigFactory.load()).withPort(25999).withSeeds(List.of("127.0.0.1:25520"));
        var pekko = s.pekkoConfig(ConfigFactory.load());
        assertEquals("cluster", pekko.getString("pekko.actor.provider"));
        assertEquals(25999, pekko.getInt("pekko.remote.artery.canonical.port"));
        assertEquals(List.of("pekko://troupe@127.0.0.1:25520"), pekko.getStringList("pekko.cluster.seed-nodes"));
        assertEquals("keep-majority", pekko.getString("pekko.cluster.split-brain-resolver.active-strategy"));
        assertEquals("troupe-kryo",
            pekko.getString("pekko.actor.serialization-bindings.\"io.troupe.actors.cluster.CrossNodeMessage\""));
        // how soon a dead coordinator's singleton moves: the reference.conf defaults, then a node's own values
        assertEquals(500, pekko.getDuration("pekko.cluster.down-removal-margin").toMillis());
        assertEquals(250, pekko.getDuration("pekko.cluster.leader-actions-interval").toMillis());
        assertEquals(250, pekko.getDuration("pekko.cluster.unreachable-nodes-reaper-interval").toMillis());
        assertEquals(250, pekko.getDuration("pekko.cluster.gossip-interval").toMillis());
        assertEquals(500, pekko.getDuration("pekko.cluster.failure-detector.heartbeat-interval").toMillis());
        var own = s.pekkoConfig(ConfigFactory.parseString(
            "troupe.cluster { singleton-removal-margin = 2s, gossip-interval = 1s }")
            .withFallback(ConfigFactory.load()));
        assertEquals(2000, own.getDuration("pekko.cluster.down-removal-margin").toMillis());
        assertEquals(1000, own.getDuration("pekko.cluster.gossip-interval").toMillis());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> s.pekkoConfig(
            ConfigFactory.parseString("troupe.cluster.leader-actions-interval = 0s")
                .withFallback(ConfigFactory.load())));
        assertTrue(e.getMessage().contains("leader-actions-interval=0s"), e.getMessage());
    }

    /** The shipped example configs (and the Kubernetes one) parse into valid node and data-plane settings. */
    @Test
    void shouldAcceptTheShippedClusterConfigs() throws Exception {
        java.nio.file.Path dir =
            java.nio.file.Path.of(System.getProperty("user.dir")).getParent().resolve("cluster-config");
        var local = ConfigFactory.parseFile(dir.resolve("local.conf").toFile()).withFallback(ConfigFactory.load())
            .resolve();
        NodeSettings l = NodeSettings.from(local);
        assertEquals(List.of("127.0.0.1:25520"), l.seeds());
        TransportConfig.from(local);
        var multi = ConfigFactory.parseFile(dir.resolve("multi-host.conf").toFile()).withFallback(ConfigFactory.load())
            .resolve();
        NodeSettings m = NodeSettings.from(multi);
        assertEquals(System.getenv("TROUPE_SEED") == null ? List.of() : List.of(System.getenv("TROUPE_SEED")),
            m.seeds(), "multi-host.conf contacts no address unless TROUPE_SEED names one");
        assertEquals(40123, TransportConfig.from(multi).udpPort());
        assertEquals(io.aeron.driver.ThreadingMode.SHARED_NETWORK, TransportConfig.from(multi).threadingMode());
        String k8s = java.nio.file.Files.readString(dir.resolve("k8s/troupe.yaml"));
        String nodeConf = k8s.substring(k8s.indexOf("node.conf: |") + "node.conf: |".length(),
            k8s.indexOf("---", k8s.indexOf("node.conf: |")));
        var pod = ConfigFactory.parseString(nodeConf.stripIndent()).withFallback(ConfigFactory.load()).resolve();
        assertEquals(List.of(), NodeSettings.from(pod).seeds(), "pods find each other by Kubernetes bootstrap");
        assertTrue(ManagementSettings.from(pod).bootstrapsOnKubernetes());
        assertEquals(io.aeron.driver.ThreadingMode.SHARED_NETWORK, TransportConfig.from(pod).threadingMode());
    }

    @Test
    void shouldRefuseBadSettingsNamingTheValue() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> NodeSettings.from(ConfigFactory.load()).withSeeds(List.of("nohostport")));
        assertTrue(e.getMessage().contains("nohostport"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> TransportConfig.from(
            ConfigFactory.parseString("troupe.transport.mtu = 100").withFallback(ConfigFactory.load())));
        assertTrue(e.getMessage().contains("100"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> TransportConfig.from(
            ConfigFactory.parseString("troupe.transport.udp-loss-rate = 1.5").withFallback(ConfigFactory.load())));
        assertTrue(e.getMessage().contains("udpLossRate=1.5"), e.getMessage());
        assertEquals(0.02, TransportConfig.from(ConfigFactory.parseString("troupe.transport.udp-loss-rate = 0.02")
            .withFallback(ConfigFactory.load())).udpLossRate());
    }
}
