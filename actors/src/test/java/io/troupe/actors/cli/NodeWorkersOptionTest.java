package io.troupe.actors.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.actors.cluster.NodeSettings;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** {@code troupe node --workers 0}: refused on a node with the worker role; a coordinator-only node hosts none. */
@Timeout(30)
class NodeWorkersOptionTest {

    @Test
    void shouldRefuseNoWorkersOnAWorkerNodeNamingTheCoordinatorRoleInstead() {
        for (String[] args : new String[][] {{"node", "--workers", "0"}, {"node", "--role", "worker", "--workers", "0"},
            {"node", "--role", "worker,coordinator", "--workers", "0", "--port", "0"}}) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            ByteArrayOutputStream err = new ByteArrayOutputStream();
            int code = TroupeCli.run(args, new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8));
            String e = err.toString(StandardCharsets.UTF_8);
            assertEquals(2, code, String.join(" ", args) + ": " + e);
            assertEquals(1, e.strip().lines().count(), "one line: " + e);
            assertTrue(e.contains("--workers") && e.contains("workers=0") && e.contains("--role coordinator"), e);
            assertEquals("", out.toString(StandardCharsets.UTF_8), "no node started");
        }
        NodeSettings coordinatorOnly = NodeSettings.from(NodeCommand.load(new String[] {"--role", "coordinator",
            "--workers", "0"}));
        assertEquals(List.of("coordinator"), coordinatorOnly.roles());
        assertEquals(0, coordinatorOnly.workers());
        assertEquals(1, NodeSettings.from(NodeCommand.load(new String[] {"--workers", "1"})).workers());
    }
}
