package io.troupe.actors.cli;

import static io.troupe.actors.cli.CliRun.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.actors.cli.CliRun.Result;
import io.troupe.models.train.RunOutputs;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

@Timeout(120)
class TroupeCliTest {
    @TempDir
    Path tmp;

    /** The value of column {@code name} in row {@code row} of a metrics.csv (row 0 is the header). */
    static String column(List<String> csv, int row, String name) {
        int i = List.of(csv.get(0).split(",")).indexOf(name);
        assertTrue(i >= 0, "metrics.csv has a column " + name + ": " + csv.get(0));
        String[] cells = csv.get(row).split(",", -1);
        return cells[i];
    }

    @Test
    void shouldTrainAndWriteMetricsPlotAndCheckpoint() throws IOException {
        Path out = tmp.resolve("run");
        Result r = run("train", "--model", "tiny", "--layout", "1x1", "--steps", "12",
            "--eval-interval", "6", "--threads", "1",
            "--out", out.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("step    12/12"), r.out());
        assertTrue(r.out().contains("ETA"), r.out());
        List<String> csv = Files.readAllLines(out.resolve("metrics.csv"));
        assertEquals(RunOutputs.CSV_HEADER, csv.get(0));
        assertEquals(13, csv.size());
        assertTrue(!column(csv, 6, "val_loss").isEmpty(), "step 6 has a val loss: " + csv.get(6));
        String svg = Files.readString(out.resolve("loss.svg"));
        assertTrue(svg.startsWith("<svg") && svg.contains("<polyline"), "loss.svg is a plot");
        assertTrue(Files.isRegularFile(out.resolve("checkpoints/step-00000012/manifest.json")));
    }

    @Test
    void shouldResumeFromTheLastCommittedCheckpoint() {
        Path a = tmp.resolve("a");
        assertEquals(0, run("train", "--model", "tiny", "--layout", "1x1", "--steps", "6", "--threads", "1",
            "--out", a.toString()).code());
        Result r = run("train", "--model", "tiny", "--layout", "1x1", "--steps", "8", "--threads", "1",
            "--resume", a.toString(),
            "--out", tmp.resolve("b").toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("resumed from") && r.out().contains("at step 6"), r.out());
        assertTrue(r.out().contains("step     7/8"), r.out());
    }

    @Test
    void shouldRefuseBadOptionsNamingTheValue() {
        Result unknown = run("train", "--modle", "tiny");
        assertEquals(2, unknown.code());
        assertTrue(unknown.err().contains("--modle"), unknown.err());

        Result model = run("train", "--model", "huge");
        assertEquals(2, model.code());
        assertTrue(model.err().contains("'huge'"), model.err());

        Result steps = run("train", "--steps", "-3");
        assertEquals(2, steps.code());
        assertTrue(steps.err().contains("steps=-3"), steps.err());

        Result notNumber = run("train", "--lr", "fast");
        assertEquals(2, notNumber.code());
        assertTrue(notNumber.err().contains("lr"), notNumber.err());

        Result engine = run("train", "--engine", "warp");
        assertEquals(2, engine.code());
        assertTrue(engine.err().contains("engine=warp"), engine.err());

        Result micro = run("train", "--batch", "16", "--microbatches", "5");
        assertEquals(2, micro.code());
        assertTrue(micro.err().contains("microbatches=5"), micro.err());
    }

    @Test
    void shouldRefuseABadConfigFileNamingTheKey() throws IOException {
        Path conf = tmp.resolve("bad.conf");
        Files.writeString(conf, "troupe.train { model = small\n steps = many }\n");
        Result r = run("train", "--config", conf.toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("steps"), r.err());
        Result missing = run("train", "--config", tmp.resolve("nope.conf").toString());
        assertEquals(2, missing.code());
        assertTrue(missing.err().contains("nope.conf"), missing.err());
    }

    /** A misspelt key or section is refused with its name and line, not left silently at its default. */
    @Test
    void shouldRefuseAnUnknownKeyInAConfigFileNamingItAndItsLine() throws IOException {
        Path typo = Files.writeString(tmp.resolve("typo.conf"), "troupe.train {\n  model = tiny\n  stpes = 1\n}\n");
        refusedInOneLine("'troupe.train.stpes'", "typo.conf: 3: unknown key", "train", "--config", typo.toString());
        Path section = Files.writeString(tmp.resolve("section.conf"), "troupe { trian { steps = 1 } }\n");
        refusedInOneLine("'troupe.trian'", "known there: cluster,", "train", "--config", section.toString());
        refusedInOneLine("'troupe.trian'", "unknown key", "node", "--config", section.toString());
        refusedInOneLine("'troupe.trian'", "unknown key", "serve", "--checkpoint", "/x", "--config",
            section.toString());
        Path serve = Files.writeString(tmp.resolve("serve.conf"),
            "troupe.serve.max-bach = 4\ntroupe.serve.stage-link.step-timout = 1s\n");
        refusedInOneLine("'troupe.serve.max-bach'", "known there: deadline,", "serve", "--checkpoint", "/x",
            "--config", serve.toString());
        Files.writeString(serve, "troupe.serve.stage-link.step-timout = 1s\n");
        refusedInOneLine("'troupe.serve.stage-link.step-timout'", "known there: connect-timeout,", "serve",
            "--checkpoint", "/x", "--config", serve.toString());
        // the shipped configs, and keys Pekko reads, pass
        Path shipped = Path.of(System.getProperty("user.dir")).getParent().resolve("cluster-config");
        for (String name : List.of("local.conf", "multi-host.conf", "examples/train-big.conf")) {
            ConfigFiles.parse(shipped.resolve(name));
        }
        ConfigFiles.parse(Files.writeString(tmp.resolve("pekko.conf"),
            "pekko.loglevel = INFO\ntroupe.cluster.port = 0\ntroupe.train.lr = 1e-3\n"));
    }

    /** Real-valued options take fractions even where reference.conf writes the default as 1.0. */
    @Test
    void shouldTakeAFractionForEveryRealValuedOption() {
        Result r = run("train", "--model", "tiny", "--layout", "1x1", "--steps", "1", "--threads", "1",
            "--grad-clip", "0.5", "--lr", "0.001", "--min-lr", "0.0005", "--out", tmp.resolve("r").toString());
        assertEquals(0, r.code(), r.err());
        refusedInOneLine("lr=Infinity", "finite number > 0", "train", "--lr", "Infinity");
    }

    /** serve and serve-stage refuse a host that does not resolve or a port taken before they load a checkpoint. */
    @Test
    void shouldRefuseAnAddressServeCannotListenOnInOneLine() throws IOException {
        try (java.net.ServerSocket taken = new java.net.ServerSocket(0, 1,
            java.net.InetAddress.getLoopbackAddress())) {
            String port = Integer.toString(taken.getLocalPort());
            refusedInOneLine("127.0.0.1:" + port, "(--host, --port)", "serve", "--checkpoint", "/x",
                "--host", "127.0.0.1", "--port", port);
            refusedInOneLine("127.0.0.1:" + port, "(--host, --port)", "serve-stage", "--checkpoint", "/x",
                "--host", "127.0.0.1", "--port", port);
        }
        refusedInOneLine("'no-such-host.invalid'", "--host: unknown host", "serve", "--checkpoint", "/x",
            "--host", "no-such-host.invalid");
        refusedInOneLine("'no-such-host.invalid'", "--host: unknown host", "serve-stage", "--checkpoint", "/x",
            "--host", "no-such-host.invalid");
    }

    @Test
    void shouldExitNonZeroWithAClearMessageWhenCudaIsUnavailable() {
        Result r = run("train", "--model", "tiny", "--steps", "1", "--device", "cuda",
            "--out", tmp.resolve("c").toString());
        assertEquals(3, r.code());
        assertTrue(r.err().toLowerCase().contains("cuda"), r.err());
        Result bad = run("train", "--device", "tpu");
        assertEquals(2, bad.code());
        assertTrue(bad.err().contains("'tpu'"), bad.err());
    }

    /**
     * A resume on an engine of this process reads each file of the checkpoint once: the check before any engine
     * starts loads it (size and CRC32C verified as it decodes) and the engine restores from that, for the
     * single-device trainer and the in-process engine alike.
     */
    @Test
    void shouldReadEachCheckpointFileOnceWhenAnEngineOfThisProcessResumes() throws IOException {
        for (String layout : new String[] {"1x1", "1x2"}) {
            Path a = tmp.resolve("once-" + layout);
            assertEquals(0, run("train", "--model", "tiny", "--layout", layout, "--engine", "in-process",
                "--steps", "2", "--threads", "1", "--out", a.toString()).code());
            Path step = a.resolve("checkpoints/step-00000002");
            long files = io.troupe.models.checkpoint.Checkpoints.readManifest(step).files().size();
            long before = io.troupe.models.checkpoint.Checkpoints.shardFilesRead();
            Result r = run("train", "--model", "tiny", "--layout", layout, "--engine", "in-process", "--steps", "3",
                "--threads", "1", "--resume", a.toString(), "--out", tmp.resolve("again-" + layout).toString());
            assertEquals(0, r.code(), r.err());
            assertTrue(r.out().contains("resumed from " + step) && r.out().contains("at step 2"), r.out());
            assertEquals(files, io.troupe.models.checkpoint.Checkpoints.shardFilesRead() - before,
                layout + ": each of the checkpoint's " + files + " files read once");
        }
    }

    @Test
    void shouldRefuseACorruptResumeCheckpoint() throws IOException {
        Path a = tmp.resolve("a");
        assertEquals(0, run("train", "--model", "tiny", "--layout", "1x1", "--steps", "2", "--threads", "1",
            "--out", a.toString()).code());
        Path shard = a.resolve("checkpoints/step-00000002/shard-00.bin");
        byte[] data = Files.readAllBytes(shard);
        Files.write(shard, java.util.Arrays.copyOf(data, data.length - 7));
        Result r = run("train", "--model", "tiny", "--layout", "1x1", "--steps", "4",
            "--resume", a.toString(), "--out", tmp.resolve("b").toString());
        assertEquals(4, r.code());
        assertTrue(r.err().contains("truncated"), r.err());
    }

    /**
     * The README's main job: no layout given means dp 2 x pp 2 on an embedded 4-node cluster. Its
     * run directory gets the per-step bubble and all-reduce wait, validation, the last step's
     * trace (F/B/W, sends, receives, all-reduce wait, idle) and timeline, and a committed checkpoint;
     * a second run resumes from that checkpoint.
     */
    @Test
    void shouldTrainTheDefaultTwoByTwoOnAnEmbeddedClusterAndResume() throws IOException {
        Path out = tmp.resolve("default");
        Result r = run("train", "--model", "tiny", "--steps", "4", "--eval-interval", "2", "--checkpoint-interval", "2",
            "--out", out.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("layout 2x2x1") && r.out().contains("embedded cluster of 4 nodes"), r.out());
        assertTrue(r.out().contains("step     4/4") && r.out().contains("bubble"), r.out());
        List<String> csv = Files.readAllLines(out.resolve("metrics.csv"));
        assertEquals(RunOutputs.CSV_HEADER + RunOutputs.PIPELINE_COLUMNS, csv.get(0));
        assertEquals(5, csv.size(), String.join("\n", csv));
        assertTrue(!column(csv, 2, "val_loss").isEmpty() && column(csv, 1, "val_loss").isEmpty(),
            "val loss at step 2 only: " + csv);
        assertTrue(Double.parseDouble(column(csv, 4, "grad_norm")) > 0,
            "the cluster records the gradient norm: " + csv.get(4));
        double allReduceMs = Double.parseDouble(column(csv, 4, "allreduce_ms"));
        assertTrue(allReduceMs >= 0, "all-reduce wait: " + allReduceMs);
        String trace = Files.readString(out.resolve("trace.json"));
        for (String cat : new String[] {"\"F\"", "\"BW\"", "\"send\"", "\"recv\"",
            "\"allreduce\"", "\"idle\"", "\"optimizer\""}) {
            assertTrue(trace.contains(cat), "trace.json has " + cat);
        }
        String svg = Files.readString(out.resolve("pipeline.svg"));
        assertTrue(svg.startsWith("<svg") && svg.contains("rank 3"), "pipeline.svg has a row per rank");
        assertTrue(Files.isRegularFile(out.resolve("checkpoints/step-00000004/manifest.json")));

        Result resumed = run("train", "--model", "tiny", "--steps", "6", "--resume", out.toString(), "--out",
            tmp.resolve("again").toString());
        assertEquals(0, resumed.code(), resumed.err());
        assertTrue(resumed.out().contains("step     5/6") && !resumed.out().contains("step     4/6"), resumed.out());
    }

    @Test
    void shouldTrainDataAndPipelineParallelInProcessAndWriteTraceAndTimeline() throws IOException {
        Path out = tmp.resolve("pp");
        Result r = run("train", "--model", "tiny", "--layout", "2x2", "--engine", "in-process", "--schedule", "zb-h1",
            "--microbatches", "2", "--batch", "4", "--steps", "4", "--threads", "2", "--out", out.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("bubble"), r.out());
        List<String> csv = Files.readAllLines(out.resolve("metrics.csv"));
        assertEquals(RunOutputs.CSV_HEADER + RunOutputs.PIPELINE_COLUMNS, csv.get(0));
        double bubble = Double.parseDouble(column(csv, 4, "bubble"));
        assertTrue(bubble > 0 && bubble < 1, "bubble fraction in (0, 1): " + bubble);
        assertTrue(Files.readString(out.resolve("trace.json")).contains("traceEvents"));
        assertTrue(Files.readString(out.resolve("pipeline.svg")).startsWith("<svg"));
        assertTrue(Files.isRegularFile(out.resolve("checkpoints/step-00000004/shard-g01.bin")));
    }

    @Test
    void shouldRefusePipelineJobsThatCannotRunBeforeAnyWork() {
        Result stages = run("train", "--model", "tiny", "--layout", "1x3", "--steps", "1");
        assertEquals(2, stages.code());
        assertTrue(stages.err().contains("n_layer=2") && stages.err().contains("stages=3"), stages.err());
        Result schedule = run("train", "--model", "tiny", "--layout", "1x2", "--schedule", "zigzag", "--steps", "1");
        assertEquals(2, schedule.code());
        assertTrue(schedule.err().contains("zigzag"), schedule.err());
        Result batch = run("train", "--model", "tiny", "--layout", "2x1", "--batch", "6",
            "--microbatches", "4", "--steps", "1");
        assertEquals(2, batch.code());
        assertTrue(batch.err().contains("batch_size=6"), batch.err());
        Result tp = run("train", "--model", "tiny", "--layout", "1x1x3", "--steps", "1");
        assertEquals(2, tp.code());
        assertTrue(tp.err().contains("n_head=4") && tp.err().contains("tp=3"), tp.err());
    }

    /** A bad option, value or file: exit 2 and one line on stderr naming it and what was expected, no stack trace. */
    private static void refusedInOneLine(String naming, String expected, String... args) {
        Result r = run(args);
        assertEquals(2, r.code(), String.join(" ", args) + ": " + r.err());
        String err = r.err().strip();
        assertEquals(1, err.lines().count(), "one line for " + String.join(" ", args) + ": " + r.err());
        assertTrue(err.startsWith("troupe " + args[0] + ": ") || err.startsWith("troupe: unknown command"), err);
        assertTrue(err.contains(naming) && err.contains(expected),
            "names '" + naming + "' and '" + expected + "': " + err);
        assertTrue(!err.contains("Exception") && !err.contains("\tat "), "no stack trace: " + err);
        assertTrue(r.out().isEmpty(), "nothing on stdout: " + r.out());
    }

    @Test
    void shouldRefuseEveryBadOptionValueOrFileInOneLine() {
        refusedInOneLine("/nonexistent", "expected a text file", "train", "--data", "/nonexistent");
        refusedInOneLine("--lr", "expected a number, got 'abc'", "train", "--lr", "abc");
        refusedInOneLine("--steps", "expected a whole number of at most 2147483647, got '1.5'", "train", "--steps",
            "1.5");
        refusedInOneLine("--steps", "expected a whole number of at most 2147483647, got '3000000000'", "train",
            "--steps", "3000000000");
        refusedInOneLine("eval-batches", "[1, 2147483647] or all: eval-batches=3000000000", "train",
            "--eval-batches", "3000000000");
        refusedInOneLine("'3x'", "DPxPP", "train", "--layout", "3x");
        refusedInOneLine("--modle", "known:", "train", "--modle", "tiny");
        refusedInOneLine("--steps", "needs a value", "train", "--steps");
        refusedInOneLine("'tpu'", "expected cpu, cuda or auto", "train", "--device", "tpu");
        refusedInOneLine("--resume", "/nonexistent-run", "train", "--resume", "/nonexistent-run");
        refusedInOneLine("nope.conf", "no such file", "train", "--config", tmp.resolve("nope.conf").toString());
        refusedInOneLine("--timeout-s", "expected a whole number, got 'soon'", "submit", "--cluster", "127.0.0.1:1",
            "--timeout-s", "soon");
        refusedInOneLine("--cluster", "HOST:PORT", "submit", "--model", "tiny");
        refusedInOneLine("--port", "integer, got 'x'", "node", "--port", "x");
        refusedInOneLine("--dir", "DIR", "driver");
        refusedInOneLine("stray", "unexpected argument", "train", "stray");
        refusedInOneLine("threads=1025", "[0, 1024]", "train", "--threads", "1025", "--model", "tiny", "--layout",
            "1x1", "--steps", "1", "--out", tmp.resolve("threads").toString());
        refusedInOneLine("layout=1x1x1", "sequence-parallel needs tp > 1", "train", "--sequence-parallel",
            "--model", "tiny", "--layout", "1x1", "--steps", "1", "--out", tmp.resolve("sp").toString());
        refusedInOneLine("'fly'",
            "expected train, simulate, node, submit, driver, checkpoint, serve, serve-stage or eval", "fly");
        refusedInOneLine("--stage-hosts=127.0.0.1:7355", "--layout 1x3 needs 2 (one per stage", "serve",
            "--checkpoint", "/x", "--layout", "1x3", "--stage-hosts", "127.0.0.1:7355");
        refusedInOneLine("h:0", "HOST:PORT with a port in [1, 65535]", "serve", "--checkpoint", "/x", "--layout",
            "1x2", "--stage-hosts", "h:0");
        refusedInOneLine("--config", "no such file '/nonexistent.conf'", "serve", "--checkpoint", "/x", "--config",
            "/nonexistent.conf");
        refusedInOneLine("--checkpoint", "serve-stage needs --checkpoint DIR", "serve-stage", "--port", "1");
        refusedInOneLine("--port", "integer: --port=p", "serve-stage", "--checkpoint", "/x", "--port", "p");
        refusedInOneLine("--stages", "simulate --help", "simulate", "--stages", "zero");
    }

    /**
     * A micro-batch count derived from the layout (no --microbatches) that cannot split the batch: the refusal says
     * it was derived, from what, names the layout and the options to pass.
     */
    @Test
    void shouldSayADerivedMicroBatchCountCannotSplitTheBatchAndWhatToPass() {
        refusedInOneLine("layout 3x3x1", "no --microbatches given, so the micro-batches per replica were derived from"
            + " dp=3, pp=3 and batch=16 as min(2 x pp, batch / dp) = 5", "train", "--layout", "3x3", "--batch", "16");
        String err = run("train", "--layout", "3x3", "--batch", "16").err();
        assertTrue(err.contains("pass --batch and --microbatches M") && err.contains("--batch 15 --microbatches 5"),
            err);
        // given explicitly, the count is the user's: the message names it as given
        assertTrue(run("train", "--layout", "3x3", "--batch", "16", "--microbatches", "5").err()
            .contains("microbatches=5"));
    }

    /**
     * Data too short for the model's windows is refused before any engine starts, on every engine, with what the
     * split holds and the size to give; the cluster engine would otherwise train up to its first validation, fail
     * there and recover into the same failure. A named pipe is named as such, not as a missing path.
     */
    @Test
    void shouldRefuseDataTooShortForTheModelBeforeAnyEngineStarts() throws Exception {
        Path data = Files.writeString(tmp.resolve("short.txt"), "x".repeat(1024));
        String[][] engines = {{"--layout", "1x2"}, {"--layout", "1x1"}, {"--layout", "1x2", "--engine", "in-process"}};
        for (int i = 0; i < engines.length; i++) {
            Path out = tmp.resolve("short-" + i);
            List<String> args = new java.util.ArrayList<>(List.of("train", "--model", "big", "--steps", "1",
                "--threads", "1", "--data", data.toString(), "--out", out.toString()));
            args.addAll(List.of(engines[i]));
            refusedInOneLine(data + " (val) holds 103 tokens, need >= 129",
                "a data file or directory needs >= 1281 bytes for seq_len=128", args.toArray(String[]::new));
            assertFalse(Files.exists(out), "nothing written under " + out + " for " + List.of(engines[i]));
        }
        Path fifo = tmp.resolve("pipe");
        org.junit.jupiter.api.Assumptions.assumeTrue(
            new ProcessBuilder("mkfifo", fifo.toString()).start().waitFor() == 0, "mkfifo available");
        refusedInOneLine(fifo.toString(), "is neither a regular file nor a directory (a named pipe)", "train",
            "--model", "tiny", "--layout", "1x1", "--data", fifo.toString(), "--out", tmp.resolve("p").toString());
    }

    /** eval reads --data as train does: a directory of text files a model was trained on is evaluated on it. */
    @Test
    void shouldEvaluateOnTheDirectoryOfFilesTrainReads() throws IOException {
        Path corpus = Files.createDirectory(tmp.resolve("corpus"));
        Files.writeString(corpus.resolve("a.txt"), "to be or not to be, that is the question. ".repeat(100));
        Files.writeString(corpus.resolve("b.txt"), "whether 'tis nobler in the mind to suffer. ".repeat(100));
        Path out = tmp.resolve("on-dir");
        Result train = run("train", "--model", "tiny", "--layout", "1x1", "--steps", "2", "--threads", "1",
            "--data", corpus.toString(), "--out", out.toString());
        assertEquals(0, train.code(), train.err());
        Result r = run("eval", "--checkpoint", out.toString(), "--data", corpus.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains(corpus + " (val)") && r.out().contains("val_loss="), r.out());
        assertTrue(r.err().isEmpty(), r.err());
        Result builtIn = run("eval", "--checkpoint", out.toString());
        assertEquals(0, builtIn.code(), builtIn.err());
        assertTrue(builtIn.err().contains("the checkpoint was trained on " + corpus)
            && builtIn.err().contains("this loss is over the built-in corpus"), "without --data, says so: "
            + builtIn.err());
        refusedInOneLine("'/nonexistent-data'", "expected a text file or a directory of them", "eval", "--checkpoint",
            out.toString(), "--data", "/nonexistent-data");
    }

    /**
     * A --checkpoint path that does not exist is bad input (exit 2, as README's exit codes say), on every command
     * that takes one; a directory with no usable checkpoint is still exit 4.
     */
    @Test
    void shouldRefuseACheckpointPathThatDoesNotExistAsBadInput() throws IOException {
        refusedInOneLine("--checkpoint: no such directory '/nonexistent-ckpt'", "expected a run directory", "eval",
            "--checkpoint", "/nonexistent-ckpt");
        refusedInOneLine("--checkpoint: no such directory '/nonexistent-ckpt'", "expected a run directory", "serve",
            "--checkpoint", "/nonexistent-ckpt", "--port", "0");
        refusedInOneLine("--checkpoint: no such directory '/nonexistent-ckpt'", "expected a run directory",
            "serve-stage", "--checkpoint", "/nonexistent-ckpt", "--port", "0");
        refusedInOneLine("--resume: no such directory '/nonexistent-ckpt'", "expected a run directory", "train",
            "--resume", "/nonexistent-ckpt");
        Path empty = Files.createDirectory(tmp.resolve("empty"));
        Result none = run("eval", "--checkpoint", empty.toString());
        assertEquals(4, none.code(), none.err());
        assertTrue(none.err().contains("no committed checkpoint"), none.err());
    }

    /** Counts read as English: one micro-batch, one row, one argument. */
    @Test
    void shouldCountInTheSingularForOne() {
        Result r = run("train", "--model", "tiny", "--layout", "1x2", "--engine", "in-process", "--microbatches", "1",
            "--batch", "1", "--steps", "1", "--threads", "1", "--out", tmp.resolve("one").toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains(" 1 micro-batch of 1 row per replica, "), r.out());
        refusedInOneLine("got 1 argument", "diff takes two checkpoints", "checkpoint", "diff", "/x");
        assertFalse(run("checkpoint", "diff", "/x").err().contains("1 arguments"));
        refusedInOneLine("got 3 arguments", "diff takes two checkpoints", "checkpoint", "diff", "/x", "/y", "/z");
    }

    @Test
    void shouldPrintHelpForEveryCommand() {
        for (String command : List.of("train", "simulate", "node", "submit", "driver", "checkpoint", "serve",
            "serve-stage", "eval")) {
            for (String help : List.of("--help", "-h")) {
                Result r = run(command, help);
                assertEquals(0, r.code(), command + " " + help + ": " + r.err());
                assertTrue(r.out().contains("usage: troupe " + command + " "), command + " " + help + ": " + r.out());
                // wrapped for a terminal, as a block of lines
                assertTrue(r.out().lines().count() > 1 && r.out().lines().allMatch(l -> l.length() <= 120),
                    command + " " + help + ": " + r.out());
            }
        }
        Result late = run("submit", "--cluster", "127.0.0.1:1", "--help");
        assertEquals(0, late.code(), late.err());
        assertTrue(late.out().contains("usage: troupe submit"), late.out());
    }

    /** Help names what a user can type: eval-batches' "all", and every endpoint the server answers. */
    @Test
    void shouldNameEveryAcceptedValueAndEndpointInHelp() {
        assertTrue(run("train", "--help").out().contains("[--eval-batches N|all]"), TrainCommand.USAGE);
        String serve = run("serve", "--help").out();
        for (String endpoint : List.of("POST /v1/completions", "GET /v1/models", "GET /health", "GET /health/live",
            "GET /metrics")) {
            assertTrue(serve.contains(endpoint), endpoint + " in: " + serve);
        }
    }

    /** The overview names the checkpoint sub-command as it is typed: its first word runs it. */
    @Test
    void shouldNameTheCheckpointSubcommandsAsTyped() {
        String line = run("--help").out().lines().filter(l -> l.strip().startsWith("checkpoint ")).findFirst()
            .orElseThrow();
        String first = line.strip().split("\\s+")[1];
        Result r = run("checkpoint", first, "/nonexistent-run");
        assertEquals(2, r.code(), r.err());
        assertFalse(r.err().contains("unknown checkpoint command"), line + " -> " + r.err());
        assertTrue(r.err().contains("/nonexistent-run"), r.err());
    }
}
