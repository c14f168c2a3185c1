package io.troupe.actors.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

@Timeout(60)
class SimulateCommandTest {
    @TempDir
    Path dir;

    private record Outcome(int code, String out, String err) {
        String lastLine() {
            String[] lines = out.strip().split("\n");
            return lines[lines.length - 1];
        }
    }

    private static Outcome run(String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int code = SimulateCommand.run(args, new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8));
        return new Outcome(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    @Test
    void shouldPrintBubbleAndStepOnTheLastLine() {
        Outcome o = run("--stages", "8", "--microbatches", "32", "--schedule", "1f1b", "--cost", "1,1,0");
        System.out.print(o.out);
        assertEquals(0, o.code, o.err);
        assertEquals("bubble=0.1795 step=78.000", o.lastLine());
        Outcome zb = run("--stages", "8", "--microbatches", "32", "--schedule", "zb-h1");
        assertEquals("bubble=0.0680 step=103.000", zb.lastLine());
    }

    @Test
    void shouldSplitStageCostsByTensorParallelismAndAddItsCommunication() {
        // cost 2,2,0 split over tp 2 is the 1,1,0 pipeline; 0.5 of all-reduce per F and per B scales it by 1.5
        Outcome half = run("--stages", "8", "--microbatches", "32", "--schedule", "1f1b", "--cost", "2,2,0", "--tp",
            "2");
        assertEquals(0, half.code, half.err);
        assertTrue(half.out.contains(" tp=2 "), half.out);
        assertEquals("bubble=0.1795 step=78.000", half.lastLine());
        Outcome comm = run("--stages", "8", "--microbatches", "32", "--schedule", "1f1b", "--cost", "2,2,0", "--tp",
            "2",
                "--tp-comm", "0.5,0.5");
        assertEquals("bubble=0.1795 step=117.000", comm.lastLine());
        Outcome bad = run("--stages", "8", "--microbatches", "32", "--schedule", "1f1b", "--tp-comm", "1");
        assertEquals(2, bad.code);
        assertTrue(bad.err.contains("--tp-comm"), bad.err);
    }

    /** Costs whose sums overflow are refused, naming the options, before any table, chart or trace is written. */
    @Test
    void shouldRefuseCostsWhoseTimesOverflowWritingNothing() {
        Path svg = dir.resolve("huge.svg");
        Path trace = dir.resolve("huge.json");
        for (String cost : new String[] {"1e307,1,1", "1e308,1e308,1e308"}) {
            Outcome o = run("--stages", "4", "--microbatches", "8", "--schedule", "1f1b", "--cost", cost, "--svg",
                svg.toString(), "--trace", trace.toString());
            assertEquals(2, o.code, cost + ": " + o.out + o.err);
            assertTrue(o.err.contains("the times overflow") && o.err.contains("--cost"), o.err);
            assertEquals("", o.out, cost);
            assertFalse(Files.exists(svg) || Files.exists(trace), cost + ": no chart or trace");
        }
        Outcome big = run("--stages", "4", "--microbatches", "8", "--schedule", "1f1b", "--cost", "1e300,1,1");
        assertEquals(0, big.code, big.err);
    }

    @Test
    void shouldRunEveryScheduleWithJitterStragglerAndLinks() {
        for (String schedule : new String[] {"gpipe", "1f1b", "interleaved", "zb-h1", "adaptive"}) {
            Outcome o = run("--stages", "4", "--microbatches", "8", "--schedule", schedule, "--jitter", "0.2",
                    "--straggler", "2:1.5", "--seed", "3", "--latency", "0.05", "--bandwidth", "1e7");
            assertEquals(0, o.code, schedule + ": " + o.err);
            assertTrue(o.lastLine().matches("bubble=0\\.\\d{4} step=\\d+\\.\\d{3}"), o.lastLine());
        }
    }

    @Test
    void shouldWriteSvgAndChromeTrace() throws Exception {
        Path svg = dir.resolve("p.svg");
        Path trace = dir.resolve("t.json");
        Outcome o = run("--stages", "4", "--microbatches", "8", "--schedule", "adaptive", "--svg", svg.toString(),
                "--trace", trace.toString());
        assertEquals(0, o.code, o.err);
        String svgText = Files.readString(svg);
        assertTrue(svgText.startsWith("<svg") && svgText.contains("adaptive  p=4 m=8  bubble="), svgText.substring(0,
            200));
        String json = Files.readString(trace);
        assertTrue(json.contains("\"traceEvents\"") && json.contains("\"ph\":\"X\""));
    }

    @Test
    void shouldRejectBadOptionsWithExitCodeTwoNamingTheValue() {
        String[][] bad = {
            {"--stages", "0", "--microbatches", "8", "--schedule", "1f1b"},
            {"--stages", "x4", "--microbatches", "8", "--schedule", "1f1b"},
            {"--stages", "4", "--microbatches", "8", "--schedule", "zb-h9"},
            {"--stages", "4", "--microbatches", "6", "--schedule", "interleaved"},
            {"--stages", "4", "--microbatches", "8", "--schedule", "1f1b", "--cost", "1,2"},
            {"--stages", "4", "--microbatches", "8", "--schedule", "1f1b", "--jitter", "1.5"},
            {"--stages", "4", "--microbatches", "8", "--schedule", "1f1b", "--straggler", "7:1.5"},
            {"--stages", "4", "--microbatches", "8", "--schedule", "1f1b", "--straggler", "2x"},
            {"--stages", "4", "--microbatches", "8", "--schedule", "1f1b", "--frobnicate", "1"},
            {"--stages", "4", "--microbatches", "8"},
            {"--stages", "2", "--microbatches", "2", "--schedule", "1f1b", "--svg", "/nonexistent-dir/p.svg"},
        };
        String[] named = {"--stages 0", "--stages x4", "zb-h9", "microbatches=6", "--cost 1,2", "--jitter 1.5",
            "stage=7", "--straggler 2x", "--frobnicate", "missing --schedule",
            "cannot write /nonexistent-dir/p.svg: no such file or directory"};
        for (int i = 0; i < bad.length; i++) {
            Outcome o = run(bad[i]);
            assertEquals(2, o.code, String.join(" ", bad[i]));
            assertTrue(o.err.contains(named[i]), "expected '" + named[i] + "' in: " + o.err);
        }
    }

    /**
     * The largest documented size simulates to a bubble and a step time under every schedule. How long it takes is
     * printed, not asserted (docs/benchmarks.md, "Schedules and simulator", records it); the timeout only bounds a
     * hang.
     */
    @Test
    void shouldSimulateSixtyFourStagesAndFiveHundredTwelveMicrobatches() {
        for (String schedule : new String[] {"1f1b", "zb-h1", "adaptive", "interleaved"}) {
            long start = System.nanoTime();
            Outcome o = run("--stages", "64", "--microbatches", "512", "--schedule", schedule, "--jitter", "0.2");
            long ms = (System.nanoTime() - start) / 1_000_000;
            System.out.println(schedule + " p=64 m=512: " + o.lastLine() + " in " + ms + " ms");
            assertEquals(0, o.code, o.err);
            java.util.regex.Matcher m = java.util.regex.Pattern.compile("bubble=(0\\.\\d{4}) step=\\d+\\.\\d{3}")
                .matcher(o.lastLine());
            assertTrue(m.matches(), schedule + ": " + o.lastLine());
            double bubble = Double.parseDouble(m.group(1));
            assertTrue(bubble > 0 && bubble < 0.5, schedule + ": 512 micro-batches over 64 stages leave a bubble under "
                + "half the step: " + o.lastLine());
        }
    }
}
