package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.actors.cli.TroupeCli;
import io.troupe.runtime.launch.ChildJvm;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A killed node process is downed by the ring's port probe ({@link DeadMemberProbe}) within seconds, before the
 * failure detector could even hold it unreachable: two node processes on 127.0.0.1 whose detector tolerates a 60 s
 * heartbeat pause (and whose resolver waits 60 s more), one SIGKILLed; the other logs that it downs it.
 */
@Tag("slow")
@Timeout(120)
class PortProbeRingTest {
    /** Far past the test's wait: only the probe can down the killed node within it. */
    private static final List<String> SLOW_DETECTOR = List.of("-Dtroupe.cluster.acceptable-heartbeat-pause=60s",
        "-Dtroupe.cluster.sbr-stable-after=60s");
    private final List<ChildJvm> nodes = new ArrayList<>();

    @AfterEach
    void closeAll() {
        for (ChildJvm n : nodes) {
            n.close();
        }
    }

    private ChildJvm node(String... args) throws Exception {
        List<String> a = new ArrayList<>(List.of("node", "--port", "0", "--metrics-port", "0", "--workers", "1",
            "--threads", "1"));
        a.addAll(List.of(args));
        ChildJvm c = ChildJvm.start(TroupeCli.class, SLOW_DETECTOR, a);
        nodes.add(c);
        return c;
    }

    @Test
    void shouldDownAKilledNodeBeforeTheFailureDetectorNotices() throws Exception {
        ChildJvm first = node("--role", "worker,coordinator");
        String line = first.awaitLine("troupe node: up at ", 60_000);
        String seed = line.substring("troupe node: up at ".length(), line.indexOf(','));
        ChildJvm second = node("--role", "worker", "--seed", seed);
        String joined = second.awaitLine("troupe node: joined the cluster as ", 60_000);
        String address = joined.substring("troupe node: joined the cluster as ".length()).trim();
        long killed = System.nanoTime();
        second.kill();
        String downed = first.awaitMatch(Pattern.compile(".*" + Pattern.quote(address + " "
            + DeadMemberProbe.DOWNING + DeadMemberProbe.BEFORE_DETECTOR)), 30_000).group();
        double s = (System.nanoTime() - killed) / 1e9;
        System.out.printf("killed node downed by the ring's probe %.1f s after its SIGKILL: %s%n", s, downed);
        assertTrue(s < 30, "downed before the 60 s heartbeat pause could pass: " + s + " s");
    }
}
