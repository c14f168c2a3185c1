package io.troupe.actors.serve;

import static io.troupe.actors.cli.CliRun.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.actors.cli.CliRun.Result;
import io.troupe.models.checkpoint.Checkpoints;
import io.troupe.models.infer.InferenceWeights;
import io.troupe.models.infer.Quantization;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Checkpoints the trainer writes under layouts other than one device's, read by {@code troupe eval}, by the
 * weights {@code troupe serve} loads and by {@code troupe checkpoint diff}: the in-process engine's interleaved
 * run, and the cluster's tensor-parallel and ZeRO-2 runs, give the single device's validation loss (1e-5
 * relative, the layouts' documented tolerance) and its greedy completions, whole, on two pipeline stages and in
 * int8; a damaged shard is refused with exit code 4 naming the file.
 */
@Timeout(300)
class TrainedCheckpointLayoutsTest {
    private static final String PROMPT = "abcab";

    @TempDir
    Path tmp;

    /** A run of the tiny model, 2 steps, one checkpoint, under {@code layout} (the layout options): its directory. */
    private Path train(String name, String... layout) {
        Path out = tmp.resolve(name);
        List<String> args = new ArrayList<>(List.of("train", "--model", "tiny", "--steps", "2", "--checkpoint-interval",
            "2", "--threads", "1", "--out", out.toString()));
        args.addAll(Arrays.asList(layout));
        Result r = run(args.toArray(String[]::new));
        assertEquals(0, r.code(), name + ": " + r.err());
        return out;
    }

    /** {@code troupe eval}'s validation loss of {@code run}'s checkpoint. */
    private static double valLoss(Path run) {
        Result r = run("eval", "--checkpoint", run.toString());
        assertEquals(0, r.code(), run + ": " + r.err());
        String last = r.out().strip().lines().reduce((a, b) -> b).orElseThrow();
        assertTrue(last.startsWith("val_loss="), last);
        return Double.parseDouble(last.substring("val_loss=".length()));
    }

    /** The greedy completion of {@link #PROMPT} by a server on {@code run}'s checkpoint as troupe serve loads it. */
    private static String greedy(Path run, Quantization q, int stages) throws Exception {
        try (InferenceServer server = InferenceServer.start(InferenceWeights.load(run, q), ServeTestSupport.settings(),
            stages)) {
            return ServeTestSupport.greedyTexts(server, List.of(PROMPT)).get(0);
        }
    }

    /** {@code run}'s checkpoint read as {@code reference}'s is: loss, greedy text (whole and 1x2) and the diff. */
    private static void assertReadAsTheSingleDevices(Path run, Path reference) throws Exception {
        double expected = valLoss(reference);
        double loss = valLoss(run);
        assertEquals(expected, loss, 1e-5 * expected, run + " against " + reference);
        assertEquals(greedy(reference, Quantization.NONE, 1), greedy(run, Quantization.NONE, 1), run.toString());
        assertEquals(greedy(reference, Quantization.NONE, 1), greedy(run, Quantization.NONE, 2), run + " on 1x2");
        assertEquals(greedy(reference, Quantization.INT8, 1), greedy(run, Quantization.INT8, 1), run + " in int8");
        Result diff = run("checkpoint", "diff", reference.toString(), run.toString());
        assertEquals(0, diff.code(), diff.err());
        assertTrue(diff.out().strip().lines().reduce((a, b) -> b).orElseThrow().startsWith("bitwise="), diff.out());
    }

    /**
     * The in-process engine's interleaved run records its virtual stages in its manifest's layout ("1x1x1 (v=2)"):
     * eval, serve and diff read it, and a run resumes from it.
     */
    @Test
    void shouldReadAndResumeTheInterleavedCheckpointOfTheInProcessEngine() throws Exception {
        Path one = train("one", "--layout", "1x1");
        Path interleaved = train("interleaved", "--layout", "1x1", "--schedule", "interleaved", "--virtual", "2",
            "--engine", "in-process");
        assertEquals("1x1x1 (v=2)", Checkpoints.readManifest(Checkpoints.resolve(interleaved)).layout());
        assertReadAsTheSingleDevices(interleaved, one);

        Result resumed = run("train", "--model", "tiny", "--steps", "3", "--threads", "1", "--layout", "1x1",
            "--schedule", "interleaved", "--virtual", "2", "--engine", "in-process", "--resume", interleaved.toString(),
            "--out", tmp.resolve("resumed").toString());
        assertEquals(0, resumed.code(), resumed.err());
        assertTrue(resumed.out().contains("step     3/3") && !resumed.out().contains("step     2/3"), resumed.out());
    }

    /** The cluster's tensor-parallel (1x1x2) and ZeRO-2 (2x1) checkpoints: one shard per tp member, dp 2's moments. */
    @Test
    void shouldReadTheTensorParallelAndZeroTwoCheckpointsOfTheCluster() throws Exception {
        Path one = train("one", "--layout", "1x1");
        Path tp = train("tp", "--layout", "1x1x2");
        assertTrue(Files.isRegularFile(Checkpoints.resolve(tp).resolve("shard-g00-t01.bin")), tp.toString());
        assertReadAsTheSingleDevices(tp, one);
        assertReadAsTheSingleDevices(train("zero2", "--layout", "2x1", "--zero", "2"), one);
    }

    /**
     * A tensor-parallel checkpoint with a shard missing or one byte of a shard flipped: eval and serve exit 4 with
     * one line naming the file, before any answer.
     */
    @Test
    void shouldRefuseAMissingOrDamagedShardNamingTheFile() throws Exception {
        Path step = Checkpoints.resolve(train("tp", "--layout", "1x1x2", "--engine", "in-process"));
        Path shard = step.resolve("shard-g00-t01.bin");
        byte[] bytes = Files.readAllBytes(shard);

        Files.delete(shard);
        assertRefused(step, "shard-g00-t01.bin is missing");

        bytes[bytes.length / 2] ^= 0x10;
        Files.write(shard, bytes);
        assertRefused(step, shard + ": corrupt bytes in block");
    }

    private static void assertRefused(Path checkpoint, String why) {
        for (List<String> args : List.of(List.of("eval"), List.of("serve", "--port", "0"))) {
            String command = args.get(0);
            List<String> all = new ArrayList<>(args);
            all.addAll(List.of("--checkpoint", checkpoint.toString()));
            Result r = run(all.toArray(String[]::new));
            assertEquals(4, r.code(), command + ": " + r.err());
            assertTrue(r.err().startsWith("troupe " + command + ": ") && r.err().contains(why), r.err());
            assertEquals(1, r.err().strip().lines().count(), r.err());
            assertFalse(r.out().contains("val_loss") || r.out().contains("http://"), r.out());
        }
    }
}
