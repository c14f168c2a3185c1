package io.troupe.actors.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.checkpoint.Checkpoints;
import io.troupe.models.checkpoint.Manifest;
import io.troupe.models.checkpoint.ShardState;
import io.troupe.models.gpt.GptConfig;
import io.troupe.runtime.testkit.TestFiles;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code troupe checkpoint ls} and {@code diff} on real checkpoint directories. */
class CheckpointCommandTest {
    private final ByteArrayOutputStream out = new ByteArrayOutputStream();
    private final ByteArrayOutputStream err = new ByteArrayOutputStream();

    private int run(String... args) {
        return TroupeCli.run(args, new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true,
            StandardCharsets.UTF_8));
    }

    private static Path write(Path root, long step, float w1) {
        ShardState s = new ShardState(step);
        s.put(new ShardState.Entry("wte", new int[] {2, 2}, new float[] {1f, 2f, 3f, w1}, new float[4], new float[4]));
        Manifest m = new Manifest(Manifest.FORMAT, step, step, 1, 8, "1x1", GptConfig.tiny(), "test", List.of());
        return Checkpoints.write(root, m, Map.of("shard-g00.bin", s));
    }

    @Test
    void shouldListCheckpointsWithTheirStatusAndCompareThemParameterByParameter(@TempDir Path tmp) throws Exception {
        Path a = write(tmp.resolve("a"), 10, 4f);
        write(tmp.resolve("a"), 20, 4f);
        Files.createDirectories(tmp.resolve("a/step-00000030.tmp"));
        Path b = write(tmp.resolve("b"), 10, 4.5f);
        assertEquals(0, run("checkpoint", "ls", tmp.resolve("a").toString()), err.toString());
        String ls = out.toString();
        assertTrue(ls.contains("step-00000010") && ls.contains("step-00000020") && ls.contains("valid"), ls);
        assertTrue(ls.contains("uncommitted"), ls);
        out.reset();
        assertEquals(0, run("checkpoint", "diff", a.toString(), a.toString()));
        String[] same = out.toString().strip().split("\n");
        assertEquals("bitwise=true max_abs=0.000e+00 max_rel=0.000e+00", same[same.length - 1]);
        out.reset();
        assertEquals(0, run("checkpoint", "diff", a.toString(), b.toString()));
        String[] lines = out.toString().strip().split("\n");
        assertEquals("bitwise=false max_abs=5.000e-01 max_rel=1.250e-01", lines[lines.length - 1], out.toString());
        Files.writeString(b.resolve("shard-g00.bin"), "truncated");
        assertEquals(4, run("checkpoint", "diff", a.toString(), b.toString()));
        assertTrue(err.toString().contains("shard-g00.bin"), err.toString());
    }

    /**
     * A script can trust {@code ls}'s exit code: 4 when a checkpoint it lists is invalid or the job record is
     * unreadable (the listing still printed in full), 0 when all it lists is valid, leftovers never used aside.
     */
    @Test
    void shouldExit4WhenACheckpointListedIsInvalidOrTheJobRecordUnreadable(@TempDir Path tmp) throws Exception {
        write(tmp, 10, 4f);
        Path twenty = write(tmp, 20, 4f);
        Files.createDirectories(tmp.resolve("step-00000030.tmp"));
        assertEquals(0, run("checkpoint", "ls", tmp.toString()), out.toString());
        out.reset();
        Files.writeString(twenty.resolve("shard-g00.bin"), "truncated");
        assertEquals(4, run("checkpoint", "ls", tmp.toString()), out.toString());
        String[] lines = out.toString().split("\n");
        assertTrue(line(lines, "step-00000020").contains("invalid"), out.toString());
        assertTrue(line(lines, "step-00000010").contains("valid"), "the rest still listed: " + out.toString());
        assertEquals(4, run("checkpoint", "ls", twenty.toString()), "one invalid step-N on its own");
        Path rec = tmp.resolve("rec");
        write(rec, 10, 4f);
        out.reset();
        assertEquals(0, run("checkpoint", "ls", rec.toString()), out.toString());
        Files.writeString(rec.resolve(io.troupe.actors.cluster.JobRecord.FILE), "{not json");
        out.reset();
        assertEquals(4, run("checkpoint", "ls", rec.toString()), out.toString());
        assertTrue(out.toString().contains("job record: unreadable"), out.toString());
    }

    /**
     * A re-commit renames the step's old directory aside ({@code .old}) before moving the new one in: beside the
     * final name the aside copy is superseded, without it (a crash between the two renames) it is the step.
     */
    @Test
    void shouldTellASupersededAsideCopyFromOneThatStandsForItsStep(@TempDir Path tmp) throws Exception {
        Path ten = write(tmp, 10, 4f);
        Path twenty = write(tmp, 20, 4f);
        TestFiles.copyTree(ten, tmp.resolve("step-00000010.old"));
        Files.move(twenty, tmp.resolve("step-00000020.old"));
        assertEquals(0, run("checkpoint", "ls", tmp.toString()), err.toString());
        String[] lines = out.toString().split("\n");
        String superseded = line(lines, "step-00000010.old");
        String standsFor = line(lines, "step-00000020.old");
        assertTrue(superseded.contains("superseded") && !superseded.contains("valid"), superseded);
        assertTrue(standsFor.contains("valid") && standsFor.contains("final name missing"), standsFor);
        assertTrue(line(lines, "step-00000010 ").contains("valid"), out.toString());
        assertEquals(tmp.resolve("step-00000020.old"), Checkpoints.resolve(tmp));
    }

    private static String line(String[] lines, String prefix) {
        for (String l : lines) {
            if (l.startsWith(prefix)) {
                return l;
            }
        }
        throw new AssertionError("no line starts with '" + prefix + "' in " + String.join("\n", lines));
    }

    @Test
    void shouldRefuseAnUnknownSubcommandOrMissingArgumentsWithOneLine() {
        assertEquals(2, run("checkpoint", "rm", "x"));
        assertTrue(err.toString().contains("unknown checkpoint command 'rm'"), err.toString());
        err.reset();
        assertEquals(2, run("checkpoint", "diff", "x"));
        assertEquals(1, err.toString().strip().split("\n").length, err.toString());
        assertEquals(2, run("checkpoint", "ls", "/no/such/dir"));
    }
}
