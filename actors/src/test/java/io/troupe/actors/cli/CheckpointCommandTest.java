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
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Consumer;
import java.util.function.UnaryOperator;
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

    /**
     * A path that is not a directory is bad input for {@code ls} and for either side of {@code diff} alike: exit 2, one
     * line naming the value and what it is (missing, a file, a link to nothing), no stack trace; exit 4 stays for a
     * directory that holds no usable checkpoint. A link to a checkpoint is followed.
     */
    @Test
    void shouldRefuseAPathThatIsNotADirectoryWithExit2NamingIt(@TempDir Path tmp) throws Exception {
        Path a = write(tmp.resolve("a"), 10, 4f);
        Path missing = tmp.resolve("no such 'dir'");
        Path file = a.resolve(Checkpoints.MANIFEST);
        Path dangling = Files.createSymbolicLink(tmp.resolve("dangling"), tmp.resolve("gone"));
        for (String[] args : List.of(new String[] {"ls", missing.toString()}, new String[] {"diff", missing.toString(),
            a.toString()}, new String[] {"diff", a.toString(), missing.toString()})) {
            err.reset();
            assertEquals(2, run(prepend("checkpoint", args)), err.toString());
            assertEquals(1, err.toString().strip().lines().count(), err.toString());
            assertTrue(err.toString().contains("no such directory '" + missing + "'"), err.toString());
        }
        err.reset();
        assertEquals(2, run("checkpoint", "diff", a.toString(), file.toString()));
        assertTrue(err.toString().contains("B: '" + file + "' is a file, not a directory"), err.toString());
        err.reset();
        assertEquals(2, run("checkpoint", "ls", dangling.toString()));
        assertTrue(err.toString().contains("'" + dangling + "' is a symbolic link to '" + tmp.resolve("gone") + "'"),
            err.toString());
        assertTrue(!err.toString().contains("\tat ") && !err.toString().contains("Exception"), err.toString());

        Path link = Files.createSymbolicLink(tmp.resolve("link"), tmp.resolve("a"));
        out.reset();
        assertEquals(0, run("checkpoint", "ls", link.toString()), err.toString());
        assertTrue(line(out.toString().split("\n"), "step-00000010").contains("valid"), out.toString());
        assertEquals(0, run("checkpoint", "diff", link.toString(), a.toString()), err.toString());

        // a directory with nothing of a run: exit 0 as documented, and it says so, naming the directory
        Path empty = Files.createDirectories(tmp.resolve("empty"));
        out.reset();
        assertEquals(0, run("checkpoint", "ls", empty.toString()));
        assertTrue(out.toString().contains("no checkpoint under '" + empty + "'"), out.toString());
        err.reset();
        assertEquals(4, run("checkpoint", "diff", empty.toString(), a.toString()));
        assertTrue(err.toString().contains("no committed checkpoint under " + empty), err.toString());
    }

    /** A manifest of another format version, cut short, or naming a file outside its directory: exit 4, naming it. */
    @Test
    void shouldRefuseAManifestOfAnotherVersionCutShortOrNamingAFileElsewhere(@TempDir Path tmp) throws Exception {
        Path a = write(tmp.resolve("a"), 10, 4f);
        Path mf = a.resolve(Checkpoints.MANIFEST);
        String json = Files.readString(mf);
        Files.writeString(mf, json.replace("\"format\": 1,", "\"format\": 2,"));
        assertEquals(4, run("checkpoint", "ls", a.toString()), out.toString());
        assertTrue(out.toString().contains("unsupported manifest format 2 (this build reads 1)"), out.toString());
        Files.writeString(mf, json.substring(0, json.length() / 2));
        err.reset();
        assertEquals(4, run("checkpoint", "diff", a.toString(), a.toString()));
        assertTrue(err.toString().contains(mf + ": unreadable manifest"), err.toString());
        // the checksum line dropped (a manifest written before it existed reads unchecked) and a shard's name
        // pointing at another checkpoint's file
        Path b = write(tmp.resolve("b"), 10, 4.5f);
        String unchecked = json.replaceFirst("\\s*\"crc32c_of_values\": \"[0-9a-f]+\",", "");
        Files.writeString(mf, unchecked.replace("\"shard-g00.bin\"", "\"../../b/step-00000010/shard-g00.bin\""));
        err.reset();
        assertEquals(4, run("checkpoint", "diff", a.toString(), b.toString()));
        assertTrue(err.toString().contains("file name \"../../b/step-00000010/shard-g00.bin\" is not a plain file"),
            err.toString());
        Files.writeString(mf, unchecked);
        assertEquals(0, run("checkpoint", "diff", a.toString(), b.toString()), err.toString());
    }

    /** Numbers are ASCII digits whatever the JVM's locale: a script reads the same listing everywhere. */
    @Test
    void shouldWriteAsciiDigitsInEveryLocale(@TempDir Path tmp) {
        Path a = write(tmp.resolve("a"), 12, 4f);
        Locale before = Locale.getDefault();
        try {
            Locale.setDefault(Locale.forLanguageTag("ar-EG"));
            out.reset();
            assertEquals(0, run("checkpoint", "ls", tmp.resolve("a").toString()), err.toString());
            String ls = line(out.toString().split("\n"), "step-00000012");
            assertTrue(ls.matches("step-00000012 +12 1x1 +tiny +\\d+  valid \\(1 shards, CRC32C checked\\)"), ls);
            out.reset();
            assertEquals(0, run("checkpoint", "diff", a.toString(), a.toString()), err.toString());
            assertTrue(out.toString().startsWith("A: step 12 (" + a + ")\nB: step 12 ("), out.toString());
            assertTrue(line(out.toString().split("\n"), "wte.m ").matches("wte\\.m +4 +0\\.000e\\+00 .*"),
                out.toString());
        } finally {
            Locale.setDefault(before);
        }
    }

    private static String[] prepend(String first, String[] rest) {
        String[] all = new String[rest.length + 1];
        all[0] = first;
        System.arraycopy(rest, 0, all, 1, rest.length);
        return all;
    }

    /** A tiny run of {@code layout} (2 steps, one checkpoint) written by the product: its checkpoint directory. */
    private Path train(Path out, String layout) {
        int code = run("train", "--model", "tiny", "--layout", layout, "--steps", "2", "--batch", "4",
            "--microbatches", "2", "--threads", "2", "--checkpoint-interval", "2", "--out", out.toString());
        assertEquals(0, code, err.toString());
        return Checkpoints.resolve(out);
    }

    /** {@code from}'s checkpoint written again under {@code root} by the product's writer after {@code edit}. */
    private static Path rewrite(Path from, Path root, UnaryOperator<Manifest> manifest,
                                Consumer<Map<String, ShardState>> edit) {
        Checkpoints.Loaded l = Checkpoints.load(from);
        Map<String, ShardState> shards = new LinkedHashMap<>(l.shards());
        edit.accept(shards);
        return Checkpoints.write(root, manifest.apply(l.manifest()), shards);
    }

    private String diff(Path a, Path b) {
        out.reset();
        err.reset();
        assertEquals(0, run("checkpoint", "diff", a.toString(), b.toString()), err.toString());
        return out.toString();
    }

    private static String last(String text) {
        String[] lines = text.strip().split("\n");
        return lines[lines.length - 1];
    }

    /**
     * Under tensor parallelism every member's file holds its shard of a split parameter under the parameter's
     * name: each member's shard is compared (joined into the whole tensor), so one float changed in member 0's
     * file is found by name; changed without fixing the file's checksum it is a corrupt file, exit 4 naming it.
     */
    @Test
    void shouldCompareEveryTensorParallelMembersShard(@TempDir Path tmp) throws Exception {
        Path a = train(tmp.resolve("a"), "1x1x2");
        Path b = rewrite(a, tmp.resolve("b/checkpoints"), m -> m, shards ->
            shards.get("shard-g00-t00.bin").entries().get("tok_emb.weight").param()[5] += 1e-3f);
        String d = diff(a, b);
        assertTrue(last(d).startsWith("bitwise=false"), d);
        assertTrue(line(d.split("\n"), "tok_emb.weight ").endsWith("false"), d);
        assertTrue(line(d.split("\n"), "tok_emb.weight.m ").endsWith("true"), d);
        assertEquals(1, d.lines().filter(l -> l.endsWith("false")).count(), "only tok_emb.weight differs: " + d);
        assertEquals("bitwise=true max_abs=0.000e+00 max_rel=0.000e+00", last(diff(a, a)));

        // the same tensors as a single device writes them: every name in both, none alone in one
        Path single = train(tmp.resolve("single"), "1x1");
        String cross = diff(single, a);
        assertTrue(!cross.contains("only in") && !cross.contains("inconsistent"), cross);
        assertTrue(cross.contains("lm_head.weight.v "), cross);

        // a hex edit of one float, the checksums left as they were
        Path corrupt = tmp.resolve("corrupt");
        TestFiles.copyTree(a, corrupt);
        Path file = corrupt.resolve("shard-g00-t01.bin");
        byte[] bytes = Files.readAllBytes(file);
        bytes[bytes.length / 2] ^= 0x40;
        Files.write(file, bytes);
        out.reset();
        assertEquals(4, run("checkpoint", "diff", a.toString(), corrupt.toString()));
        assertTrue(err.toString().contains("shard-g00-t01.bin"), err.toString());
        assertTrue(!out.toString().contains("bitwise=true"), out.toString());
        Files.write(file, java.util.Arrays.copyOf(bytes, bytes.length - 8));
        err.reset();
        assertEquals(4, run("checkpoint", "diff", corrupt.toString(), a.toString()));
        assertTrue(err.toString().contains("shard-g00-t01.bin") && err.toString().contains("truncated"),
            err.toString());
    }

    /**
     * Equal weights are no witness alone: a checkpoint whose data cursor (the next batch) or AdamW step count
     * differs resumes into another run, so each is compared and named.
     */
    @Test
    void shouldCompareTheDataPositionAndTheOptimizerStep(@TempDir Path tmp) throws Exception {
        Path a = train(tmp.resolve("a"), "1x2");
        Path cursor = rewrite(a, tmp.resolve("cursor"), m -> new Manifest(m.format(), m.step(), m.dataCursor() + 1,
            m.seed(), m.batchSize(), m.layout(), m.model(), m.dataSource(), m.files()), shards -> { });
        String d = diff(a, cursor);
        assertTrue(last(d).startsWith("bitwise=false max_abs=0.000e+00"), d);
        assertTrue(d.contains("state data_cursor     A 2, B 3 (differs)"), d);
        Path opt = rewrite(a, tmp.resolve("opt"), m -> m, shards -> {
            ShardState s = shards.get("shard-g01.bin");
            ShardState t = new ShardState(s.optimizerStep() - 1);
            s.entries().values().forEach(t::put);
            shards.put("shard-g01.bin", t);
        });
        d = diff(a, opt);
        assertTrue(last(d).startsWith("bitwise=false"), d);
        assertTrue(d.contains("state optimizer_step  A 2, B 1,2 (differs)"), d);
        assertTrue(d.contains("inconsistent: B: shard files at different optimizer steps [1, 2]"), d);
    }

    private static Path tensors(Path root, String file, ShardState.Entry... entries) {
        ShardState s = new ShardState(3);
        for (ShardState.Entry e : entries) {
            s.put(e);
        }
        Manifest m = new Manifest(Manifest.FORMAT, 3, 3, 1, 8, "1x1", GptConfig.tiny(), "test", List.of());
        return Checkpoints.write(root, m, Map.of(file, s));
    }

    private static ShardState.Entry entry(String name, int[] shape, float... values) {
        return new ShardState.Entry(name, shape, values, new float[values.length], new float[values.length]);
    }

    /** Raw bits decide: the same NaN is the same, a NaN against a number never is, nor -0.0 against 0.0. */
    @Test
    void shouldCompareTheRawBitsOfEveryFloatAndTheShapes(@TempDir Path tmp) {
        float nan = Float.NaN;
        Path a = tensors(tmp.resolve("a"), "shard-g00.bin", entry("w", new int[] {2, 2}, 1f, nan, 0f, 4f));
        assertEquals("bitwise=true max_abs=0.000e+00 max_rel=0.000e+00",
            last(diff(a, tensors(tmp.resolve("same"), "shard-g00.bin",
                entry("w", new int[] {2, 2}, 1f, nan, 0f, 4f)))));
        String d = diff(a, tensors(tmp.resolve("num"), "shard-g00.bin", entry("w", new int[] {2, 2}, 1f, 2f, 0f, 4f)));
        assertEquals("bitwise=false max_abs=inf max_rel=inf", last(d), d);
        d = diff(a, tensors(tmp.resolve("neg"), "shard-g00.bin", entry("w", new int[] {2, 2}, 1f, nan, -0f, 4f)));
        assertEquals("bitwise=false max_abs=0.000e+00 max_rel=0.000e+00", last(d), d);
        d = diff(a, tensors(tmp.resolve("shape"), "shard-g00.bin", entry("w", new int[] {4, 1}, 1f, nan, 0f, 4f)));
        assertEquals("bitwise=false max_abs=inf max_rel=inf", last(d), d);
        assertTrue(d.contains("w (shapes [2, 2] vs [4, 1])"), d);
        d = diff(a, tensors(tmp.resolve("more"), "shard-g00.bin", entry("w", new int[] {2, 2}, 1f, nan, 0f, 4f),
            entry("x", new int[] {1}, 1f)));
        assertTrue(last(d).startsWith("bitwise=false") && d.contains("x: only in B"), d);
        Path empty = tensors(tmp.resolve("empty"), "shard-g00.bin");
        d = diff(empty, tensors(tmp.resolve("empty2"), "shard-g00.bin"));
        assertTrue(last(d).startsWith("bitwise=false") && d.contains("nothing compared"), d);
    }

    /** Each rank's error-feedback residuals are its own file's: every file's are compared, by file. */
    @Test
    void shouldCompareTensorsOfEveryFileNotOnlyTheLastOfOneName(@TempDir Path tmp) {
        Manifest m = new Manifest(Manifest.FORMAT, 3, 3, 1, 8, "2x1", GptConfig.tiny(), "test", List.of());
        Map<String, ShardState> a = new LinkedHashMap<>();
        Map<String, ShardState> b = new LinkedHashMap<>();
        for (String file : List.of("shard-g00.bin", "ef-r000.bin", "ef-r001.bin")) {
            ShardState sa = new ShardState(file.startsWith("ef") ? 0 : 3);
            ShardState sb = new ShardState(sa.optimizerStep());
            sa.put(entry(file.startsWith("ef") ? "ef.0" : "w", new int[] {2}, 1f, 2f));
            float changed = file.equals("ef-r000.bin") ? 3f : 2f;
            sb.put(entry(file.startsWith("ef") ? "ef.0" : "w", new int[] {2}, 1f, changed));
            a.put(file, sa);
            b.put(file, sb);
        }
        String d = diff(Checkpoints.write(tmp.resolve("a"), m, a), Checkpoints.write(tmp.resolve("b"), m, b));
        assertTrue(last(d).startsWith("bitwise=false max_abs=0.000e+00"), d);
        assertTrue(line(d.split("\n"), "ef-r000.bin:ef.0 ").endsWith("false"), d);
        assertTrue(line(d.split("\n"), "ef-r001.bin:ef.0 ").endsWith("true"), d);
    }
}
