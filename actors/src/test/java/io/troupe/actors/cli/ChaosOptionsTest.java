package io.troupe.actors.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * What {@code scripts/chaos} accepts before it builds or starts anything: the train options it passes through
 * (with a value, or a switch without one), a config file only together with the options it sizes the run from,
 * and clear refusals naming the bad value. Each case stops at the option checks (exit 2), so no node starts.
 */
@Timeout(60)
class ChaosOptionsTest {
    /** The train options chaos passes on reach its own checks: a too-short run is refused, not the option. */
    @Test
    void shouldAcceptTrainOptionsWithAndWithoutValues() throws Exception {
        for (List<String> opts : List.of(List.of("--zero", "1"), List.of("--recompute", "full"),
            List.of("--grad-compression", "bf16"), List.of("--schedule", "zb-h1"), List.of("--sequence-parallel"),
            List.of("--eval-interval", "5"), List.of("--step-timeout-ms", "20000"))) {
            List<String> args = new ArrayList<>(opts);
            args.addAll(List.of("--steps", "5"));
            Result r = chaos(args);
            assertEquals(2, r.exit, opts + ": " + r.output);
            assertTrue(r.output.contains("--steps 5 leaves no room for a fault"), opts + " accepted: " + r.output);
        }
    }

    @Test
    void shouldRefuseAnUnknownOptionNamingIt() throws Exception {
        Result r = chaos(List.of("--engine", "local"));
        assertEquals(2, r.exit, r.output);
        assertTrue(r.output.contains("unknown option '--engine'"), r.output);
    }

    /** Its defaults would override a config file's values, so a config run names what chaos sizes itself from. */
    @Test
    void shouldAskForTheSizingOptionsWithAConfigFile() throws Exception {
        Result r = chaos(List.of("--config", "cluster-config/local.conf", "--layout", "2x1", "--steps", "40"));
        assertEquals(2, r.exit, r.output);
        assertTrue(r.output.contains("with --config, pass --checkpoint-interval too"), r.output);
        r = chaos(List.of("--config", "cluster-config/local.conf", "--layout", "2x1", "--steps", "5",
            "--checkpoint-interval", "10"));
        assertEquals(2, r.exit, r.output);
        assertTrue(r.output.contains("--steps 5 leaves no room for a fault after step 16"), r.output);
    }

    /**
     * Its help is the whole header comment, rolling-restart and cluster-restart among the plans, which an unknown
     * plan's refusal lists.
     */
    @Test
    void shouldListTheRestartPlansInItsHelpAndItsRefusal() throws Exception {
        Result r = chaos(List.of("--help"));
        assertEquals(0, r.exit, r.output);
        assertTrue(r.output.contains("partition, rolling-restart, cluster-restart, all (default)"), r.output);
        assertTrue(r.output.contains("cluster-restart SIGKILLs every node at once"), r.output);
        assertTrue(r.output.contains("rolling-restart stops every node in turn cleanly"), r.output);
        assertTrue(r.output.contains("the partition plan's namespaces carry this run's pid"), "the header's end: "
            + r.output);
        r = chaos(List.of("--plan", "rolling"));
        assertEquals(2, r.exit, r.output);
        assertTrue(r.output.contains("unknown plan 'rolling'")
            && r.output.contains(" rolling-restart cluster-restart, all"), r.output);
    }

    @Test
    void shouldRefuseARollingGapThatIsNoNumberOfSteps() throws Exception {
        Result r = chaos(List.of("--plan", "rolling-restart"), java.util.Map.of("TROUPE_CHAOS_ROLL_GAP", "0"));
        assertEquals(2, r.exit, r.output);
        assertTrue(r.output.contains("TROUPE_CHAOS_ROLL_GAP must be a positive number of steps, got '0'"), r.output);
    }

    private record Result(int exit, String output) {
    }

    private static Result chaos(List<String> args) throws IOException, InterruptedException {
        return chaos(args, java.util.Map.of());
    }

    private static Result chaos(List<String> args, java.util.Map<String, String> env)
        throws IOException, InterruptedException {
        Path root = Path.of(System.getProperty("user.dir")).getParent();
        List<String> cmd = new ArrayList<>(List.of("bash", root.resolve("scripts/chaos").toString(), "--plan",
            "kill-worker"));
        cmd.addAll(args);
        Path log = Files.createTempFile("chaos-options", ".log");
        try {
            ProcessBuilder pb = new ProcessBuilder(cmd).directory(root.toFile()).redirectErrorStream(true)
                .redirectOutput(log.toFile());
            pb.environment().putAll(env);
            Process p = pb.start();
            p.getOutputStream().close();
            boolean ended = p.waitFor(30, TimeUnit.SECONDS);
            if (!ended) { // past the option checks: it would build and start nodes
                p.descendants().forEach(ProcessHandle::destroyForcibly);
                p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            }
            String out = Files.readString(log, StandardCharsets.UTF_8);
            assertTrue(ended, "scripts/chaos " + args + " stopped at its option checks: " + out);
            return new Result(p.exitValue(), out);
        } finally {
            Files.deleteIfExists(log);
        }
    }
}
