package io.troupe.actors.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import io.troupe.actors.cluster.RecoverySettings;
import io.troupe.actors.cluster.SnapshotMode;
import org.junit.jupiter.api.Test;

class NodeSnapshotsOptionTest {

    private static SnapshotMode mode(String... args) {
        return RecoverySettings.from(NodeCommand.load(args)).snapshotMode();
    }

    @Test
    void shouldTakeSnapshotsWhereTheyFitByDefaultAndAsRequestedOtherwise() {
        assertEquals(SnapshotMode.AUTO, mode(), "auto by default (reference.conf)");
        assertEquals(RecoverySettings.defaults().snapshotMode(), mode(), "reference.conf and defaults() agree");
        assertTrue(RecoverySettings.from(NodeCommand.load(new String[0])).snapshots(), "auto may take them");
        assertEquals(SnapshotMode.AUTO, mode("--snapshots", "auto"));
        assertEquals(SnapshotMode.ON, mode("--snapshots", "on"));
        assertEquals(SnapshotMode.OFF, mode("--snapshots", "off"));
        assertFalse(RecoverySettings.from(NodeCommand.load(new String[] {"--snapshots", "off"})).snapshots());
        assertTrue(RecoverySettings.from(NodeCommand.load(new String[] {"--snapshots", "on"})).snapshots());
        for (String[] kv : new String[][] {{"auto", "AUTO"}, {"on", "ON"}, {"off", "OFF"}, {"true", "ON"},
            {"no", "OFF"}, {"\"auto\"", "AUTO"}}) {
            assertEquals(SnapshotMode.valueOf(kv[1]), RecoverySettings.from(ConfigFactory.parseString(
                "troupe.recovery.snapshots = " + kv[0])).snapshotMode(), kv[0]);
        }
    }

    @Test
    void shouldRefuseABadValueNamingIt() {
        String flag = assertThrows(UsageException.class, () -> NodeCommand.load(new String[] {"--snapshots", "maybe"}))
            .getMessage();
        assertTrue(flag.contains("--snapshots") && flag.contains("'maybe'"), flag);
        String key = assertThrows(IllegalArgumentException.class, () -> RecoverySettings.from(
            ConfigFactory.parseString("troupe.recovery.snapshots = sometimes"))).getMessage();
        assertTrue(key.contains("troupe.recovery.snapshots") && key.contains("sometimes")
            && key.contains("auto, on or off"), key);
        String number = assertThrows(IllegalArgumentException.class, () -> RecoverySettings.from(
            ConfigFactory.parseString("troupe.recovery.snapshots = 1"))).getMessage();
        assertTrue(number.contains("snapshots=1"), number);
        assertTrue(flag.contains("auto, on or off"), flag);
    }
}
