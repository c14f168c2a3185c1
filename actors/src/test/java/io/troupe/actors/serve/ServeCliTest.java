package io.troupe.actors.serve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.actors.cli.TroupeCli;
import io.troupe.models.infer.InferenceWeights;
import io.troupe.models.infer.PagedKvCache;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** troupe eval and troupe serve on the command line: a two-stage checkpoint loads; bad values exit 2 naming them. */
@Timeout(120)
class ServeCliTest {
    @TempDir
    Path tmp;

    private static String[] run(String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int code = TroupeCli.run(args, new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true,
            StandardCharsets.UTF_8));
        return new String[] {String.valueOf(code), out.toString(StandardCharsets.UTF_8),
            err.toString(StandardCharsets.UTF_8)};
    }

    @Test
    void shouldPrintTheExactValidationLossOfATwoStageCheckpointInFp32AndInt8() throws Exception {
        Path ckpt = ServeTestSupport.twoStageCheckpoint(tmp.resolve("ckpt"));
        byte[] text = new byte[4000];
        new Random(2).nextBytes(text);
        Path data = Files.write(tmp.resolve("data.txt"), text);
        String[] r = run("eval", "--checkpoint", tmp.resolve("ckpt").toString(), "--data", data.toString(),
            "--quantize", "int8");
        System.out.println(r[1] + r[2]);
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].contains(ckpt.getFileName().toString()), r[1]);
        String last = r[1].strip().lines().reduce((a, b) -> b).orElseThrow();
        assertTrue(last.startsWith("val_loss_fp32=") && last.contains(" val_loss_int8=")
            && last.contains(" weight_bytes_ratio="), last);

        // a bfloat16 KV cache: its loss beside the float32 cache's, close to it and not the same
        String[] kv = run("eval", "--checkpoint", tmp.resolve("ckpt").toString(), "--data", data.toString(),
            "--kv-dtype", "bf16");
        System.out.println(kv[1] + kv[2]);
        assertEquals("0", kv[0], kv[2]);
        String kvLast = kv[1].strip().lines().reduce((a, b) -> b).orElseThrow();
        java.util.Map<String, String> f = new java.util.HashMap<>();
        for (String field : kvLast.split(" ")) {
            f.put(field.substring(0, field.indexOf('=')), field.substring(field.indexOf('=') + 1));
        }
        double f32 = Double.parseDouble(f.get("val_loss"));
        double bf16 = Double.parseDouble(f.get("val_loss_kv_bf16"));
        assertTrue(Math.abs(bf16 - f32) < 0.01 * f32, kvLast);
        assertTrue(bf16 != f32, "a bfloat16 cache rounds the keys and values: " + kvLast);
    }

    @Test
    void shouldRefuseABadServeConfigNamingTheKeyAndTheValue() {
        for (String[] kv : new String[][] {{"kv-cache-dtype", "fp8"}, {"quantize", "int4"}}) {
            com.typesafe.config.Config bad = com.typesafe.config.ConfigFactory.parseString("troupe.serve." + kv[0]
                + " = " + kv[1]).withFallback(com.typesafe.config.ConfigFactory.load());
            IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                () -> ServeSettings.from(bad));
            String m = e.getMessage();
            assertTrue(m.contains("troupe.serve." + kv[0]) && m.contains(kv[1]), m);
        }
        assertEquals(io.troupe.models.infer.KvPrecision.BF16, ServeSettings.from(com.typesafe.config.ConfigFactory
            .parseString("troupe.serve.kv-cache-dtype = bf16").withFallback(com.typesafe.config.ConfigFactory.load()))
            .kvPrecision());
    }

    @Test
    void shouldBuildSettingsByNameFromTheShippedDefaultsAndRefuseABadValueNamingIt() {
        ServeSettings d = ServeSettings.defaults();
        assertEquals(8080, d.port());
        assertEquals(16, d.maxBatch());
        assertEquals(25_000, d.drainTimeoutMs());
        ServeSettings s = d.toBuilder().port(0).maxQueue(3).kvPrecision(io.troupe.models.infer.KvPrecision.BF16)
            .build();
        assertEquals(0, s.port());
        assertEquals(3, s.maxQueue());
        assertEquals(io.troupe.models.infer.KvPrecision.BF16, s.kvPrecision());
        assertEquals(d.tokenBudget(), s.tokenBudget(), "what is not named keeps its value");
        assertEquals(s, s.toBuilder().build());
        assertEquals(300, d.withMaxBatch(300).tokenBudget(), "a batch above the budget raises the budget");
        IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
            () -> d.toBuilder().tokenBudget(8).build());
        assertTrue(e.getMessage().contains("token-budget=8"), e.getMessage());
    }

    @Test
    void shouldRefuseBadOptionsWithExit2NamingThem() throws java.io.IOException {
        Path ckpt = ServeTestSupport.twoStageCheckpoint(tmp.resolve("ckpt"));
        String c = ckpt.toString();
        String[][] cases = {
            {"--checkpoint", "eval"},
            {"--max-batch", "eval", "--checkpoint", c, "--max-batch", "3"},
            {"--quantize", "serve", "--checkpoint", c, "--quantize", "int4"},
            {"--max-batch", "serve", "--checkpoint", c, "--max-batch", "0"},
            {"--port", "serve", "--checkpoint", c, "--port", "http"},
            {"--isolate-step-core", "serve", "--checkpoint", c, "--isolate-step-core", "yes"},
            {"--kv-dtype", "serve", "--checkpoint", c, "--kv-dtype", "fp8"},
            {"prefill-ahead", "serve", "--checkpoint", c, "--prefill-ahead", "-1"},
            {"--prefill-ahead", "serve", "--checkpoint", c, "--prefill-ahead", "two"},
            {"--drain-timeout", "serve", "--checkpoint", c, "--drain-timeout", "-5"},
            {"--drain-timeout", "serve", "--checkpoint", c, "--drain-timeout", "30s"},
            {"--kv-dtype", "eval", "--checkpoint", c, "--kv-dtype", "f16"},
            {"--layout", "serve", "--checkpoint", c, "--layout", "2x2"},
            {"dp=2", "serve", "--checkpoint", c, "--layout", "2x1"},
            {"tp=2", "serve", "--checkpoint", c, "--layout", "1x2x2"},
            {"--checkpoint", "serve"},
            {"--data", "eval", "--checkpoint", c, "--data", tmp.resolve("absent.txt").toString()},
            {"--device", "serve", "--checkpoint", c, "--device", "tpu"},
            {"--device", "serve", "--checkpoint", c, "--device", "cpu", "--layout", "1x2"},
        };
        for (String[] k : cases) {
            String[] r = run(Arrays.copyOfRange(k, 1, k.length));
            assertEquals("2", r[0], Arrays.toString(k) + ": " + r[2]);
            assertTrue(r[2].contains(k[0].startsWith("--") ? k[0].substring(2) : k[0]), Arrays.toString(k)
                + " names it: " + r[2]);
            assertEquals(1, r[2].strip().lines().count(), "one line: " + r[2]);
        }
        // a path that does not exist is bad input; a directory without a committed checkpoint a checkpoint error
        String[] missing = run("eval", "--checkpoint", tmp.resolve("nothing").toString());
        assertEquals("2", missing[0], missing[2]);
        assertTrue(missing[2].contains("no such directory"), missing[2]);
        String[] empty = run("eval", "--checkpoint", java.nio.file.Files.createDirectories(tmp.resolve("empty"))
            .toString());
        assertEquals("4", empty[0], empty[2]);
        if (!io.troupe.runtime.cuda.CudaSupport.isAvailable()) {
            String[] noGpu = run("serve", "--checkpoint", c, "--device", "cuda");
            assertEquals("3", noGpu[0], "no GPU here: " + noGpu[2]);
            assertTrue(noGpu[2].contains("cuda"), noGpu[2]);
        }
    }

    /**
     * A batch the KV cache can never hold (one block per running sequence at least) and a KV cache the heap
     * cannot hold beside the weights are refused before anything is allocated, naming the value and the limit;
     * each limit itself is accepted.
     */
    @Test
    void shouldRefuseABatchAboveTheKvBlocksAndACacheAboveTheHeap() {
        Path ckpt = ServeTestSupport.twoStageCheckpoint(tmp.resolve("ckpt"));
        String c = ckpt.toString();
        String[] batch = run("serve", "--checkpoint", c, "--port", "0", "--max-batch", "100000000");
        System.out.print(batch[2]);
        assertEquals("2", batch[0], batch[2]);
        assertTrue(batch[2].contains("max-batch=100000000") && batch[2].matches("(?s).*blocks=\\d+.*"), batch[2]);
        assertEquals(1, batch[2].strip().lines().count(), "one line: " + batch[2]);
        String[] onDevice = run("serve", "--checkpoint", c, "--port", "0", "--device", "cpu", "--max-batch",
            "100000000");
        assertEquals("2", onDevice[0], onDevice[2]);
        assertTrue(onDevice[2].contains("max-batch=100000000"), onDevice[2]);
        long heapMib = Runtime.getRuntime().maxMemory() >> 20;
        String over = String.valueOf(heapMib + 1);
        String[] cache = run("serve", "--checkpoint", c, "--port", "0", "--kv-cache-mib", over);
        System.out.print(cache[2]);
        assertEquals("2", cache[0], cache[2]);
        assertTrue(cache[2].contains("kv-cache-mib=" + over) && cache[2].contains("is " + heapMib + " MiB"),
            cache[2]);
        assertEquals(1, cache[2].strip().lines().count(), "one line: " + cache[2]);

        InferenceWeights w = InferenceWeights.load(ckpt, io.troupe.models.infer.Quantization.NONE);
        ServeSettings s = ServeTestSupport.settings();
        int blocks = PagedKvCache.blocksForBudget(w.config(), s.kvBlockTokens(), s.kvCacheMib(), s.kvPrecision());
        long cacheBytes = blocks * PagedKvCache.bytesPerBlock(w.config(), s.kvBlockTokens(), s.kvPrecision());
        long heap = cacheBytes + w.weightBytes();
        InferenceServer.requireSizes(w, s.withMaxBatch(blocks), blocks, heap);
        org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
            () -> InferenceServer.requireSizes(w, s.withMaxBatch(blocks + 1), blocks, heap));
        org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
            () -> InferenceServer.requireSizes(w, s, blocks, heap - 1));
    }
}
