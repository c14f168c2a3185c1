package io.troupe.actors.cli;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import io.troupe.actors.cluster.RecoverySettings;
import org.junit.jupiter.api.Test;

class NodeSnapshotsOptionTest {

    @Test
    void shouldTakeSnapshotsByDefaultAndTurnThemOffOnRequest() {
        assertTrue(RecoverySettings.from(NodeCommand.load(new String[0])).snapshots(), "on by default");
        assertFalse(RecoverySettings.from(NodeCommand.load(new String[] {"--snapshots", "off"})).snapshots());
        assertTrue(RecoverySettings.from(NodeCommand.load(new String[] {"--snapshots", "on"})).snapshots());
    }

    @Test
    void shouldRefuseABadValueNamingIt() {
        String flag = assertThrows(UsageException.class, () -> NodeCommand.load(new String[] {"--snapshots", "maybe"}))
            .getMessage();
        assertTrue(flag.contains("--snapshots") && flag.contains("'maybe'"), flag);
        String key = assertThrows(IllegalArgumentException.class, () -> RecoverySettings.from(
            ConfigFactory.parseString("troupe.recovery.snapshots = sometimes"))).getMessage();
        assertTrue(key.contains("troupe.recovery.snapshots") && key.contains("sometimes"), key);
    }
}
