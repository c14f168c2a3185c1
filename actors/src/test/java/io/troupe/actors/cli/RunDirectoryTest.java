package io.troupe.actors.cli;

import static io.troupe.actors.cli.CliRun.run;
import static io.troupe.actors.cli.TroupeCliTest.column;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.actors.cli.CliRun.Result;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** What a run directory records: epochs, gradient norms, the data's fingerprint, traced steps. */
@Timeout(180)
class RunDirectoryTest {
    @TempDir
    Path tmp;

    private Path text(String name, int bytes, int salt) throws IOException {
        StringBuilder sb = new StringBuilder();
        String[] words = {"to", "be", "or", "not", "that", "is", "the", "question", "whether", "tis", "nobler"};
        for (int i = 0; sb.length() < bytes; i++) {
            sb.append(words[(i * 7 + salt) % words.length]).append(i % 13 == 0 ? ".\n" : " ");
        }
        return Files.writeString(tmp.resolve(name), sb.substring(0, bytes));
    }

    @Test
    void shouldRecordGradNormEpochAndExactValidationOnEveryEngineAlike() throws IOException {
        Path data = text("corpus.txt", 20_000, 0);
        Path single = tmp.resolve("single");
        Path piped = tmp.resolve("piped");
        Result a = run("train", "--model", "tiny", "--layout", "1x1", "--steps", "4", "--batch", "4", "--threads", "1",
            "--data", data.toString(), "--eval-interval", "2", "--eval-batches", "all", "--out", single.toString());
        assertEquals(0, a.code(), a.err());
        Result b = run("train", "--model", "tiny", "--layout", "1x2", "--engine", "in-process", "--microbatches", "2",
            "--steps", "4", "--batch", "4", "--threads", "2", "--data", data.toString(), "--eval-interval", "2",
            "--eval-batches", "all", "--out", piped.toString());
        assertEquals(0, b.code(), b.err());
        List<String> s = Files.readAllLines(single.resolve("metrics.csv"));
        List<String> p = Files.readAllLines(piped.resolve("metrics.csv"));
        int seq = io.troupe.models.gpt.GptConfig.preset("tiny").seqLen();
        long windows = (18_000 - seq) / seq;              // the train split is 90% of 20000 bytes
        for (int row = 1; row <= 4; row++) {
            double gs = Double.parseDouble(column(s, row, "grad_norm"));
            double gp = Double.parseDouble(column(p, row, "grad_norm"));
            assertTrue(gs > 0, "grad norm recorded: " + s.get(row));
            assertEquals(gs, gp, 1e-4 * gs, "same gradient norm on both engines at step " + row);
            assertEquals(row * 4.0 / windows, Double.parseDouble(column(s, row, "epoch")), 1e-5);
            assertEquals(column(s, row, "epoch"), column(p, row, "epoch"));
        }
        double vs = Double.parseDouble(column(s, 4, "val_loss"));
        double vp = Double.parseDouble(column(p, 4, "val_loss"));
        assertEquals(vs, vp, 1e-5 * vs, "exact validation agrees across engines");

        Path cluster = tmp.resolve("cluster");
        Result c = run("train", "--model", "tiny", "--layout", "1x2", "--microbatches", "2", "--steps", "4",
            "--batch", "4",
            "--threads", "2", "--data", data.toString(), "--eval-interval", "2", "--eval-batches", "all", "--out",
            cluster.toString());
        assertEquals(0, c.code(), c.err());
        List<String> k = Files.readAllLines(cluster.resolve("metrics.csv"));
        for (int row = 1; row <= 4; row++) {
            double gs = Double.parseDouble(column(s, row, "grad_norm"));
            assertEquals(gs, Double.parseDouble(column(k, row, "grad_norm")), 1e-4 * gs,
                "cluster gradient norm, step " + row);
            assertEquals(column(s, row, "epoch"), column(k, row, "epoch"));
        }
        double vk = Double.parseDouble(column(k, 4, "val_loss"));
        assertEquals(vs, vk, 1e-5 * vs, "exact validation on the cluster engine");
        String json = Files.readString(single.resolve("data.json"));
        assertTrue(json.contains("\"size_bytes\": 20000") && json.contains("\"hash_kind\": \"sha256\""), json);
        assertEquals(json, Files.readString(piped.resolve("data.json")), "recorded by the in-process engine");
        assertEquals(json, Files.readString(cluster.resolve("checkpoints").resolve("data.json")),
            "recorded by the cluster engine's coordinator, beside job.json");
        assertFalse(Files.exists(cluster.resolve("data.json")), "one record of the data");
        Result other = run("train", "--model", "tiny", "--layout", "1x2", "--microbatches", "2", "--steps", "6",
            "--batch", "4", "--threads", "2", "--data", text("other.txt", 20_000, 3).toString(), "--resume",
            cluster.toString(), "--out", tmp.resolve("cluster-other").toString());
        assertEquals(2, other.code(), other.out());
        assertTrue(other.err().contains("corpus.txt") && other.err().contains("other.txt"), other.err());
    }

    @Test
    void shouldRefuseToResumeWithOtherData() throws IOException {
        Path first = text("first.txt", 8_000, 1);
        Path second = text("second.txt", 8_000, 2);
        Path a = tmp.resolve("a");
        assertEquals(0, run("train", "--model", "tiny", "--layout", "1x1", "--steps", "2", "--batch", "2",
            "--threads", "1",
            "--data", first.toString(), "--out", a.toString()).code());
        Result other = run("train", "--model", "tiny", "--layout", "1x1", "--steps", "4", "--batch", "2",
            "--threads", "1",
            "--data", second.toString(), "--resume", a.toString(), "--out", tmp.resolve("b").toString());
        assertEquals(2, other.code(), other.out());
        assertTrue(other.err().contains("first.txt") && other.err().contains("second.txt"), other.err());
        assertEquals(1, other.err().strip().lines().count(), "one line: " + other.err());
        assertFalse(Files.exists(tmp.resolve("b/metrics.csv")), "refused before any work");

        Path copy = Files.copy(first, tmp.resolve("same-bytes.txt"));
        Result same = run("train", "--model", "tiny", "--layout", "1x1", "--steps", "4", "--batch", "2",
            "--threads", "1",
            "--data", copy.toString(), "--resume", a.resolve("checkpoints").toString(),
            "--out", tmp.resolve("c").toString());
        assertEquals(0, same.code(), same.err());
        assertTrue(same.out().contains("at step 2"), same.out());
    }

    /** A refused run writes nothing: no new directory, and the data record of the run it names is kept. */
    @Test
    void shouldWriteNothingWhenARunIsRefused() throws IOException {
        Path first = text("first.txt", 8_000, 1);
        Path second = text("second.txt", 8_000, 2);
        Path a = tmp.resolve("a");
        assertEquals(0, run("train", "--model", "tiny", "--layout", "1x1", "--steps", "2", "--batch", "2",
            "--threads", "1", "--data", first.toString(), "--out", a.toString()).code());
        String record = Files.readString(a.resolve("data.json"));

        Result over = run("train", "--model", "tiny", "--layout", "1x2", "--steps", "2", "--threads", "2",
            "--data", second.toString(), "--out", a.toString());
        assertEquals(2, over.code(), over.out());
        assertTrue(over.err().contains("already holds a committed checkpoint"), over.err());
        assertEquals(record, Files.readString(a.resolve("data.json")), "the refused run's data is not recorded");
        Result resumed = run("train", "--model", "tiny", "--layout", "1x1", "--steps", "3", "--batch", "2",
            "--threads", "1", "--data", first.toString(), "--resume", a.toString(),
            "--out", tmp.resolve("b").toString());
        assertEquals(0, resumed.code(), resumed.err());

        for (String engine : List.of("cluster", "in-process")) {
            Path out = tmp.resolve("zigzag-" + engine);
            Result bad = run("train", "--model", "tiny", "--layout", "1x2", "--engine", engine, "--schedule", "zigzag",
                "--out", out.toString());
            assertEquals(2, bad.code(), bad.err());
            assertFalse(Files.exists(out), engine + ": no run directory for a refused run");
        }
    }

    /**
     * Every engine refuses an --out that holds another run's commit, and a --resume whose checkpoint is missing,
     * corrupt or of another job, before it writes anything: the runs named keep every byte, no --out appears.
     */
    @Test
    void shouldLeaveEveryRunDirectoryAsItWasWhenARunOrResumeIsRefused() throws IOException {
        Path a = tmp.resolve("a");
        assertEquals(0, run("train", "--model", "tiny", "--layout", "1x1", "--steps", "2", "--threads", "1",
            "--out", a.toString()).code());
        Map<Path, byte[]> before = contents(a);
        for (String engine : List.of("single", "in-process", "cluster")) {
            List<String> layout = engine.equals("single") ? List.of("--layout", "1x1")
                : List.of("--layout", "1x2", "--engine", engine);
            Result over = run(args(layout, "--steps", "3", "--out", a.toString()));
            assertEquals(2, over.code(), engine + ": " + over.out());
            assertTrue(over.err().contains("already holds a committed checkpoint"), over.err());
        }
        Path empty = Files.createDirectory(tmp.resolve("empty"));
        Path corrupt = copy(a, tmp.resolve("corrupt"));
        Path shard = corrupt.resolve("checkpoints/step-00000002/shard-00.bin");
        byte[] bytes = Files.readAllBytes(shard);
        bytes[bytes.length / 2] ^= 1;
        Files.write(shard, bytes);
        Map<Path, byte[]> corruptBefore = contents(corrupt);
        for (String engine : List.of("single", "in-process", "cluster")) {
            List<String> layout = engine.equals("single") ? List.of("--layout", "1x1")
                : List.of("--layout", "1x2", "--engine", engine);
            Path out = tmp.resolve("out-" + engine);
            Result none = run(args(layout, "--steps", "3", "--resume", empty.toString(), "--out", out.toString()));
            assertEquals(4, none.code(), engine + ": " + none.out());
            assertTrue(none.err().contains("no committed checkpoint under " + empty), none.err());
            Result bad = run(args(layout, "--steps", "3", "--resume", corrupt.toString(), "--out", out.toString()));
            assertEquals(4, bad.code(), engine + ": " + bad.out());
            assertTrue(bad.err().contains("CRC32C"), bad.err());
            Result other = run(args(layout, "--steps", "3", "--batch", "4", "--resume", a.toString(),
                "--out", out.toString()));
            assertEquals(4, other.code(), engine + ": " + other.out());
            assertTrue(other.err().contains("batch_size=2") && other.err().contains("batch_size=4"), other.err());
            assertFalse(Files.exists(out), engine + ": a refused run makes no --out");
            try (var left = Files.list(empty)) {
                assertEquals(0, left.count(), engine + ": nothing written into the empty --resume directory");
            }
        }
        assertEquals(keys(before), keys(contents(a)));
        before.forEach((file, data) -> assertTrue(java.util.Arrays.equals(data, contents(a).get(file)), "" + file));
        corruptBefore.forEach((file, data) -> assertTrue(java.util.Arrays.equals(data, contents(corrupt).get(file)),
            "" + file));
    }

    private static String[] args(List<String> layout, String... more) {
        List<String> all = new java.util.ArrayList<>(List.of("train", "--model", "tiny", "--threads", "2"));
        all.addAll(layout);
        all.addAll(List.of(more));
        return all.toArray(String[]::new);
    }

    private static java.util.Set<Path> keys(Map<Path, byte[]> m) {
        return new java.util.TreeSet<>(m.keySet());
    }

    /** Every regular file under {@code dir}, by its path relative to it, with its bytes. */
    private static Map<Path, byte[]> contents(Path dir) {
        Map<Path, byte[]> m = new java.util.HashMap<>();
        try (var files = Files.walk(dir)) {
            for (Path f : files.filter(Files::isRegularFile).toList()) {
                m.put(dir.relativize(f), Files.readAllBytes(f));
            }
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
        return m;
    }

    private static Path copy(Path from, Path to) throws IOException {
        try (var files = Files.walk(from)) {
            for (Path f : files.toList()) {
                Files.copy(f, to.resolve(from.relativize(f).toString()));
            }
        }
        return to;
    }

    /** The cluster engine commits a resumed job into the run it resumed; the last line says where. */
    @Test
    void shouldNameTheResumedRunsCheckpointsWhenAClusterJobResumes() {
        Path a = tmp.resolve("a");
        Path b = tmp.resolve("b");
        Result first = run("train", "--model", "tiny", "--layout", "1x2", "--steps", "2", "--threads", "2",
            "--out", a.toString());
        assertEquals(0, first.code(), first.err());
        assertTrue(first.out().contains("trace.json and checkpoints in " + a), first.out());

        Result resumed = run("train", "--model", "tiny", "--layout", "1x2", "--steps", "4", "--threads", "2",
            "--resume", a.toString(), "--out", b.toString());
        assertEquals(0, resumed.code(), resumed.err());
        assertTrue(Files.isDirectory(a.resolve("checkpoints/step-00000004")), "committed into the resumed run");
        assertFalse(Files.exists(b.resolve("checkpoints")), "nothing committed under --out");
        assertTrue(resumed.out().contains("trace.json in " + b + "; checkpoints in "
            + a.resolve("checkpoints").toAbsolutePath()), resumed.out());
    }

    @Test
    void shouldTraceAWindowOfSteps() throws IOException {
        traceAWindowOfSteps("in-process");
    }

    /** The default engine: every rank sends the window's intervals with its step reports. */
    @Test
    void shouldTraceAWindowOfStepsOnTheEmbeddedCluster() throws IOException {
        traceAWindowOfSteps("cluster");
    }

    private void traceAWindowOfSteps(String engine) throws IOException {
        Path out = tmp.resolve("traced-" + engine);
        Result r = run("train", "--model", "tiny", "--layout", "1x2", "--engine", engine, "--microbatches", "2",
            "--batch", "4", "--steps", "5", "--threads", "2", "--trace-steps", "2:4", "--out", out.toString());
        assertEquals(0, r.code(), r.err());
        String trace = Files.readString(out.resolve("trace.json"));
        for (int step = 2; step <= 4; step++) {
            assertTrue(trace.contains("\"step " + step + "\""), "trace.json marks step " + step);
        }
        assertFalse(trace.contains("\"step 1\"") || trace.contains("\"step 5\""), "only steps 2..4");
        assertTrue(Files.readString(out.resolve("pipeline.svg")).startsWith("<svg"));
    }

    @Test
    void shouldRefuseBadDataOptionsNamingTheValue() {
        Result eval = run("train", "--model", "tiny", "--eval-batches", "some");
        assertEquals(2, eval.code());
        assertTrue(eval.err().contains("eval-batches=some"), eval.err());
        Result backwards = run("train", "--model", "tiny", "--steps", "10", "--trace-steps", "5:2");
        assertEquals(2, backwards.code());
        assertTrue(backwards.err().contains("trace-steps=5:2"), backwards.err());
        Result past = run("train", "--model", "tiny", "--steps", "10",
            "--trace-steps", "3:11", "--engine", "in-process");
        assertEquals(2, past.code());
        assertTrue(past.err().contains("trace-steps=3:11") && past.err().contains("steps=10"), past.err());
        Result cluster = run("train", "--model", "tiny", "--steps", "10", "--trace-steps", "0:4");
        assertEquals(2, cluster.code());
        assertTrue(cluster.err().contains("trace-steps=0:4"), cluster.err());
    }
}
