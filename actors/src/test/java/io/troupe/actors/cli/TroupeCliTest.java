package io.troupe.actors.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.train.RunOutputs;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
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

    private record Result(int code, String out, String err) {
    }

    private static Result run(String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int code = TroupeCli.run(args, new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8));
        return new Result(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    @Test
    void shouldTrainAndWriteMetricsPlotAndCheckpoint() throws IOException {
        Path out = tmp.resolve("run");
        Result r = run("train", "--model", "tiny", "--steps", "12", "--eval-interval", "6", "--threads", "1",
            "--out", out.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("step    12/12"), r.out());
        assertTrue(r.out().contains("ETA"), r.out());
        List<String> csv = Files.readAllLines(out.resolve("metrics.csv"));
        assertEquals(RunOutputs.CSV_HEADER, csv.get(0));
        assertEquals(13, csv.size());
        assertTrue(csv.get(6).split(",").length >= 3 && !csv.get(6).split(",")[2].isEmpty(), "step 6 has a val loss: " + csv.get(6));
        String svg = Files.readString(out.resolve("loss.svg"));
        assertTrue(svg.startsWith("<svg") && svg.contains("<polyline"), "loss.svg is a plot");
        assertTrue(Files.isRegularFile(out.resolve("checkpoints/step-00000012/manifest.json")));
    }

    @Test
    void shouldResumeFromTheLastCommittedCheckpoint() {
        Path a = tmp.resolve("a");
        assertEquals(0, run("train", "--model", "tiny", "--steps", "6", "--threads", "1", "--out", a.toString()).code());
        Result r = run("train", "--model", "tiny", "--steps", "8", "--threads", "1", "--resume", a.toString(),
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

    @Test
    void shouldExitNonZeroWithAClearMessageWhenCudaIsUnavailable() {
        Result r = run("train", "--model", "tiny", "--steps", "1", "--device", "cuda", "--out", tmp.resolve("c").toString());
        assertEquals(3, r.code());
        assertTrue(r.err().toLowerCase().contains("cuda"), r.err());
        Result bad = run("train", "--device", "tpu");
        assertEquals(2, bad.code());
        assertTrue(bad.err().contains("'tpu'"), bad.err());
    }

    @Test
    void shouldRefuseACorruptResumeCheckpoint() throws IOException {
        Path a = tmp.resolve("a");
        assertEquals(0, run("train", "--model", "tiny", "--steps", "2", "--threads", "1", "--out", a.toString()).code());
        Path shard = a.resolve("checkpoints/step-00000002/shard-00.bin");
        byte[] data = Files.readAllBytes(shard);
        Files.write(shard, java.util.Arrays.copyOf(data, data.length - 7));
        Result r = run("train", "--model", "tiny", "--steps", "4", "--resume", a.toString(), "--out", tmp.resolve("b").toString());
        assertEquals(4, r.code());
        assertTrue(r.err().contains("truncated"), r.err());
    }
}
