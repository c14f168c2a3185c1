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
    void shouldBuildPekkoSettingsFromTroupeKeys() {
        NodeSettings s = NodeSettings.from(ConfigFactory.load()).withPort(25999).withSeeds(List.of("127.0.0.1:25520"));
        var pekko = s.pekkoConfig(ConfigFactory.load());
        assertEquals("cluster", pekko.getString("pekko.actor.provider"));
        assertEquals(25999, pekko.getInt("pekko.remote.artery.canonical.port"));
        assertEquals(List.of("pekko://troupe@127.0.0.1:25520"), pekko.getStringList("pekko.cluster.seed-nodes"));
        assertEquals("keep-majority", pekko.getString("pekko.cluster.split-brain-resolver.active-strategy"));
        assertEquals("troupe-kryo", pekko.getString("pekko.actor.serialization-bindings.\"io.troupe.actors.cluster.CrossNodeMessage\""));
    }

    @Test
    void shouldRefuseBadSettingsNamingTheValue() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> NodeSettings.from(ConfigFactory.load()).withSeeds(List.of("nohostport")));
        assertTrue(e.getMessage().contains("nohostport"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> TransportConfig.from(
            ConfigFactory.parseString("troupe.transport.mtu = 100").withFallback(ConfigFactory.load())));
        assertTrue(e.getMessage().contains("100"), e.getMessage());
    }
}
