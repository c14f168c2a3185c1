package io.troupe.models.infer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.checkpoint.Checkpoints;
import io.troupe.models.checkpoint.Manifest;
import io.troupe.models.checkpoint.ShardState;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.gpt.ParameterLayout;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A step's plan crosses to the next pipeline stage as bytes: decoded there, it must drive the stage
 * exactly as the original batch drives a stage in the same process (so a stage in another process
 * computes the same logits, bit for bit), and a damaged plan is refused with the bad value named.
 */
@Timeout(120)
class StepBatchCodecTest {
    private static final GptConfig CFG = new GptConfig("t", 256, 48, 3, 4, 40, 1e-5f);
    private static final float[] PARAMS = InferenceFixtures.randomParams(CFG, 11);
    private static final int BLOCKS = 256;

    @Test
    void shouldDriveALaterStageFromTheDecodedPlanAsTheWholeModelComputesIt() {
        BatchScheduler scheduler = InferenceFixtures.scheduler(CFG, PARAMS, 16, 24, BLOCKS);
        KvCachedGpt whole = (KvCachedGpt) scheduler.model();
        InferenceWeights w = whole.weights();
        KvCachedGpt first = new KvCachedGpt(w, new PagedKvCache(CFG, 4, BLOCKS, 1), 0, 1);
        KvCachedGpt second = new KvCachedGpt(w, new PagedKvCache(CFG, 4, BLOCKS, 2), 1, 3);
        Random rnd = new Random(12);
        for (int i = 0; i < 12; i++) {
            int[] prompt = InferenceFixtures.randomTokens(rnd, 1 + rnd.nextInt(30), 256);
            SamplingParams p = new SamplingParams(1 + rnd.nextInt(12), 0.9f, 0.95f, rnd.nextLong(), List.of());
            scheduler.submit(InferenceFixtures.generation(CFG, i, prompt, p));
        }
        UnsafeBuffer wire = new UnsafeBuffer(ByteBuffer.allocateDirect(1 << 16));
        StepBatch decoded = new StepBatch();
        int steps = 0;
        int prefillRows = 0;
        while (scheduler.hasWork()) {
            StepBatch b = scheduler.plan(System.nanoTime());
            int bytes = StepBatchCodec.encode(b, wire, 8);
            assertTrue(bytes <= StepBatchCodec.maxBytes(b), bytes + " <= " + StepBatchCodec.maxBytes(b));
            assertEquals(bytes, StepBatchCodec.decode(wire, 8, bytes, decoded, BLOCKS, 4, CFG.seqLen(), 256));
            assertEquals(b.size(), decoded.size());
            assertEquals(b.logitCount(), decoded.logitCount());
            float[] expected = whole.forward(b);
            float[] split = second.stageForward(decoded, first.stageForward(b, null));
            assertArrayEquals(expected, split, "step " + steps);
            prefillRows += b.size() - b.logitCount();
            scheduler.complete(expected, System.nanoTime());
            steps++;
        }
        assertTrue(steps > 10 && prefillRows > 0, steps + " steps, " + prefillRows + " prompt rows without logits");
    }

    @Test
    void shouldRefuseADamagedPlanNamingTheBadValue() {
        BatchScheduler scheduler = InferenceFixtures.scheduler(CFG, PARAMS, 4, 64, 64);
        scheduler.submit(InferenceFixtures.generation(CFG, 1, new int[] {1, 2, 3, 4, 5, 6}, SamplingParams.greedy(3)));
        StepBatch b = scheduler.plan(System.nanoTime());
        UnsafeBuffer wire = new UnsafeBuffer(ByteBuffer.allocateDirect(4096));
        int bytes = StepBatchCodec.encode(b, wire, 0);
        StepBatch into = new StepBatch();
        assertEquals(bytes, StepBatchCodec.decode(wire, 0, bytes, into, 64, 4, CFG.seqLen(), 256));

        assertMessage("shorter than its 16-byte header",
            () -> StepBatchCodec.decode(wire, 0, 12, into, 64, 4, 40, 256));
        assertMessage("truncated in block table", () -> StepBatchCodec.decode(wire, 0, bytes - 8, into, 64, 4, 40,
            256));
        UnsafeBuffer block = copy(wire, bytes);
        block.putInt(bytes - 4, 500);         // the table's last block id
        assertMessage("block id 500 at 1 outside [0, 64)", () -> StepBatchCodec.decode(block, 0, bytes, into, 64, 4,
            40, 256));
        assertMessage("bad block count 2 in table 0 (cache has 1 blocks)", () -> StepBatchCodec.decode(wire, 0, bytes,
            into, 1, 4, 40, 256));
        UnsafeBuffer bad = copy(wire, bytes);
        bad.putInt(0, 0x12345678);
        assertMessage("not a step plan: magic 12345678", () -> StepBatchCodec.decode(bad, 0, bytes, into, 64, 4, 40,
            256));
        UnsafeBuffer token = copy(wire, bytes);
        token.putInt(16, 999);
        assertMessage("token 999 at 0 outside [0, 256)", () -> StepBatchCodec.decode(token, 0, bytes, into, 64, 4, 40,
            256));
        UnsafeBuffer rows = copy(wire, bytes);
        rows.putInt(4, 1 << 20);
        assertMessage("bad step plan header: rows=1048576", () -> StepBatchCodec.decode(rows, 0, bytes, into, 64, 4, 40,
            256));
        UnsafeBuffer position = copy(wire, bytes);
        position.putInt(20, 39);              // a valid position, past the one block the sequence holds
        assertMessage("row 0 at position 39 is past its table's", () -> StepBatchCodec.decode(position, 0, bytes, into,
            64, 4, 40, 256));
    }

    @Test
    void shouldLoadOnlyAStagesWeightsAndAgreeOnTheCheckpointsFingerprint(@TempDir Path dir) {
        ShardState s = new ShardState(5);
        for (var spec : ParameterLayout.full(CFG).specs()) {
            float[] v = java.util.Arrays.copyOfRange(PARAMS, (int) spec.localOffset(),
                (int) (spec.localOffset() + spec.numel()));
            s.put(new ShardState.Entry(spec.name(), spec.shape(), v, new float[v.length], new float[v.length]));
        }
        Path ckpt = Checkpoints.write(dir, new Manifest(Manifest.FORMAT, 5, 5, 1, 4, "1x1x1", CFG, "markov", List.of()),
            Map.of("shard-00.bin", s));
        InferenceWeights whole = InferenceWeights.load(ckpt, Quantization.NONE);
        InferenceWeights middle = InferenceWeights.load(ckpt, Quantization.NONE, 1, 2);
        InferenceWeights last = InferenceWeights.load(ckpt, Quantization.NONE, 2, -1);
        assertEquals(whole.fingerprint(), middle.fingerprint());
        assertTrue(whole.fingerprint().startsWith("t step 5 files 1 crc32c "), whole.fingerprint());
        assertTrue(middle.weightBytes() < whole.weightBytes() / 3, middle.weightBytes() + " of " + whole.weightBytes());
        assertEquals(null, middle.tokEmb());
        assertEquals(null, middle.lmHead());
        assertMessage("block 0 is not held: these weights hold blocks [1, 2)", () -> middle.block(0));
        assertMessage("not all held by the weights, which hold [2, 3)",
            () -> new KvCachedGpt(last, new PagedKvCache(CFG, 4, 8, 2), 1, 3));
        assertMessage("stage blocks [2, 1) outside the 3 blocks", () -> InferenceWeights.load(ckpt, Quantization.NONE,
            2, 1));
        // a later stage loaded on its own computes what the same stage of the whole weights computes
        InferenceFixtures.assertSameStageOutput(whole, last, 2, 3, 6);
    }

    private static UnsafeBuffer copy(UnsafeBuffer from, int bytes) {
        UnsafeBuffer to = new UnsafeBuffer(ByteBuffer.allocateDirect(bytes));
        to.putBytes(0, from, 0, bytes);
        return to;
    }

    private static void assertMessage(String part, org.junit.jupiter.api.function.Executable e) {
        RuntimeException x = assertThrows(RuntimeException.class, e);
        assertTrue(x.getMessage().contains(part), x.getMessage());
    }
}
