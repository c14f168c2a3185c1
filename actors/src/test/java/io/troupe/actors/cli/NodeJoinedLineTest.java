package io.troupe.actors.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.troupe.runtime.launch.ChildJvm;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@code troupe node} prints {@code troupe node: joined the cluster as ADDRESS} once it is an Up member: the
 * first node of a cluster, a node joining through it, and that node again after a graceful stop (SIGTERM), started
 * on the same port (a rolling restart), whose return the line marks.
 */
@Tag("slow")
@Timeout(240)
class NodeJoinedLineTest {
    private static final String UP = "troupe node: up at ";
    private static final String JOINED = "troupe node: joined the cluster as pekko://troupe@";

    private final List<ChildJvm> nodes = new ArrayList<>();

    @AfterEach
    void stopNodes() throws InterruptedException {
        for (ChildJvm n : nodes) {
            n.stop(30_000);
        }
    }

    private ChildJvm node(String port, String seed) throws Exception {
        List<String> args = new ArrayList<>(List.of("node", "--port", port, "--metrics-port", "0", "--workers", "1",
            "--threads", "1"));
        if (seed != null) {
            args.addAll(List.of("--seed", seed));
        }
        ChildJvm n = ChildJvm.start(TroupeCli.class, List.of(), args);
        nodes.add(n);
        return n;
    }

    private static String hostPort(ChildJvm n) throws InterruptedException {
        String line = n.awaitLine(UP, 60_000);
        return line.substring(UP.length(), line.indexOf(','));
    }

    @Test
    void shouldSayWhenANodeJoinedAndWhenItJoinedAgainOnItsPortAfterAGracefulStop() throws Exception {
        ChildJvm first = node("0", null);
        String seed = hostPort(first);
        assertEquals(JOINED + seed, first.awaitLine(JOINED, 60_000));

        ChildJvm second = node("0", seed);
        String address = hostPort(second);
        assertEquals(JOINED + address, second.awaitLine(JOINED, 60_000));

        // stopped as an operator stops it: it leaves the cluster and exits, then comes back on its port
        second.stop(60_000);
        assertEquals(false, second.isAlive(), "the node exited on SIGTERM");
        ChildJvm again = node(address.substring(address.lastIndexOf(':') + 1), seed);
        assertEquals(address, hostPort(again));
        assertEquals(JOINED + address, again.awaitLine(JOINED, 90_000), again.output());
    }
}
