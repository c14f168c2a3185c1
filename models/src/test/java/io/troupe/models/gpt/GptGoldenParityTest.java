package io.troupe.models.gpt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.troupe.models.ParamSpec;
import io.troupe.models.data.Batches;
import io.troupe.models.data.Lcg;
import io.troupe.models.data.MarkovCorpus;
import io.troupe.models.data.TokenStream;
import io.troupe.models.optim.AdamW;
import io.troupe.models.optim.AdamWConfig;
import io.troupe.runtime.cpu.CpuDevice;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Numerical parity with the float64 reference in the test resource {@code golden/gpt_tiny_golden.json}
 * (its {@code recipe} section says how every value was made): the data recipe, the init recipe, the loss, the logits,
 * every parameter's gradient norm and five AdamW steps.
 */
@Timeout(120)
class GptGoldenParityTest {
    private static Config golden;
    private static Config tiny;
    private static Config f64;

    @BeforeAll
    static void load() throws IOException {
        try (InputStreamReader json = new InputStreamReader(resource("golden/gpt_tiny_golden.json"),
            StandardCharsets.UTF_8)) {
            golden = ConfigFactory.parseReader(json);
        }
        tiny = golden.getConfig("tiny");
        f64 = tiny.getConfig("f64");
    }

    @Test
    void shouldReproduceTheLcgTestVectors() {
        Config vectors = golden.getConfig("lcg_test_vectors.next_u32_first5_by_seed");
        for (String seed : List.of("0", "1", "2", "3", "1234")) {
            Lcg g = new Lcg(Long.parseLong(seed));
            List<Number> expected = vectors.getNumberList("\"" + seed + "\"");
            for (Number e : expected) {
                assertEquals(e.longValue(), g.nextU32(), "seed " + seed);
            }
        }
        Lcg skipped = new Lcg(1234);
        skipped.skip(3);
        Lcg walked = new Lcg(1234);
        walked.nextU32();
        walked.nextU32();
        walked.nextU32();
        assertEquals(walked.nextU32(), skipped.nextU32(), "skip(3) must equal three draws");
    }

    @Test
    void shouldReproduceTheMarkovCorpus() {
        Config ds = golden.getConfig("dataset");
        byte[] train = MarkovCorpus.stream(ds.getLong("table_seed"), ds.getLong("train_seed"), ds.getInt("train_len"));
        byte[] val = MarkovCorpus.stream(ds.getLong("table_seed"), ds.getLong("val_seed"), ds.getInt("val_len"));
        assertEquals(ds.getString("train_first64"), new String(train, 0, 64, StandardCharsets.US_ASCII));
        assertEquals(ds.getString("val_first64"), new String(val, 0, 64, StandardCharsets.US_ASCII));
        assertEquals(ds.getString("train_sha256"), sha256(train));
        assertEquals(ds.getString("val_sha256"), sha256(val));
    }

    @Test
    void shouldMatchTheGoldenInitWeights() throws IOException {
        GptConfig cfg = GptConfig.tiny();
        float[] expected = goldenInit();
        try (CpuDevice dev = new CpuDevice(1); Gpt gpt = Gpt.whole(cfg, dev, 2)) {
            assertEquals(tiny.getInt("n_params"), gpt.layout().numel());
            List<String> order = tiny.getStringList("param_order");
            for (int i = 0; i < order.size(); i++) {
                assertEquals(order.get(i), gpt.layout().specs().get(i).name());
            }
            gpt.initialize(tiny.getLong("config.init_seed"));
            assertArrayEquals(expected, gpt.params().toFloatArray(), 0f,
                "LCG init must equal gpt_tiny_init.f32 bit for bit");
        }
    }

    @Test
    void shouldMatchGoldenLossLogitsGradNormsAndAdamWSteps() throws IOException {
        GptConfig cfg = GptConfig.tiny();
        Config c = tiny.getConfig("config");
        int b = c.getInt("batch_size");
        int t = c.getInt("seq_len");
        TokenStream train = new TokenStream(MarkovCorpus.stream(c.getLong("table_seed"), c.getLong("train_seed"),
            c.getInt("train_len")), "golden train");
        int[] x = new int[b * t];
        int[] y = new int[b * t];
        new Batches(train, t).fill(0, b, 0, b, x, y);
        assertArrayEquals(flatten(tiny.getList("batch0_x").unwrapped()), x);
        assertArrayEquals(flatten(tiny.getList("batch0_y").unwrapped()), y);

        try (CpuDevice dev = new CpuDevice(2); Gpt gpt = Gpt.whole(cfg, dev, b)) {
            dev.copyFromHost(goldenInit(), gpt.params());
            gpt.zeroGrads();
            gpt.forwardTokens(0, x, y);
            double loss = gpt.loss(0);
            double lossDiff = Math.abs(loss - f64.getDouble("loss"));

            float[] logits = gpt.logits(0).toFloatArray();
            double sum = 0;
            double sumsq = 0;
            for (float v : logits) {
                sum += v;
                sumsq += (double) v * v;
            }
            List<Double> first8 = f64.getDoubleList("logits.b0_t0_first8");
            double logitDiff = 0;
            for (int i = 0; i < 8; i++) {
                logitDiff = Math.max(logitDiff, Math.abs(logits[i] - first8.get(i)));
            }
            List<Double> last8 = f64.getDoubleList("logits.bLast_tLast_first8");
            int lastRow = (b * t - 1) * cfg.vocabSize();
            for (int i = 0; i < 8; i++) {
                logitDiff = Math.max(logitDiff, Math.abs(logits[lastRow + i] - last8.get(i)));
            }

            gpt.backward(0, null, 1f / (b * t));
            float[] grads = gpt.grads().toFloatArray();
            double maxRel = 0;
            String worst = "";
            double total = 0;
            for (ParamSpec s : gpt.layout().specs()) {
                double sq = 0;
                for (long i = 0; i < s.numel(); i++) {
                    double g = grads[(int) (s.localOffset() + i)];
                    sq += g * g;
                }
                total += sq;
                double expected = f64.getDouble("grad_norm.\"" + s.name() + "\"");
                double rel = Math.abs(Math.sqrt(sq) - expected) / expected;
                if (rel > maxRel) {
                    maxRel = rel;
                    worst = s.name();
                }
            }
            double totalRel = Math.abs(Math.sqrt(total) - f64.getDouble("grad_norm_total"))
                / f64.getDouble("grad_norm_total");

            // Five AdamW steps on batch 0 at constant lr.
            List<Double> expectedLosses = f64.getDoubleList("adamw_same_batch_losses");
            AdamW opt = new AdamW(new AdamWConfig((float) c.getDouble("beta1"), (float) c.getDouble("beta2"),
                (float) c.getDouble("adam_eps"), (float) c.getDouble("weight_decay")), dev, gpt.layout().specs(),
                    gpt.layout().numel());
            double adamDiff = Math.abs(loss - expectedLosses.get(0));
            for (int k = 1; k < expectedLosses.size(); k++) {
                opt.step(gpt.params(), gpt.grads(), (float) c.getDouble("lr"));
                gpt.zeroGrads();
                gpt.forwardTokens(0, x, y);
                adamDiff = Math.max(adamDiff, Math.abs(gpt.loss(0) - expectedLosses.get(k)));
                gpt.backward(0, null, 1f / (b * t));
            }
            opt.close();

            System.out.printf("golden parity: loss diff=%.3e, logits max diff=%.3e, logits sum=%.9f (golden %.9f), "
                    + "sumsq=%.6f (golden %.6f), grad norm max rel diff=%.3e (%s), total grad norm rel diff=%.3e, "
                    + "adamw losses max diff=%.3e%n",
                lossDiff, logitDiff, sum, f64.getDouble("logits.sum"), sumsq, f64.getDouble("logits.sumsq"),
                maxRel, worst, totalRel, adamDiff);
            assertTrue(lossDiff <= 1e-4, "loss " + loss + " vs golden " + f64.getDouble("loss"));
            assertTrue(logitDiff <= 1e-4, "logits differ by " + logitDiff);
            assertEquals(f64.getDouble("logits.sum"), sum, 1e-3, "logits sum");
            assertEquals(f64.getDouble("logits.sumsq"), sumsq, 1e-3, "logits sumsq");
            assertTrue(maxRel <= 1e-4, "grad norm of " + worst + " off by relative " + maxRel);
            assertTrue(totalRel <= 1e-4, "total grad norm off by relative " + totalRel);
            assertTrue(adamDiff <= 1e-4, "AdamW step losses off by " + adamDiff);
        }
    }

    private static float[] goldenInit() throws IOException {
        byte[] raw;
        try (InputStream in = resource("golden/gpt_tiny_init.f32")) {
            raw = in.readAllBytes();
        }
        ByteBuffer bb = ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN);
        float[] out = new float[raw.length / 4];
        bb.asFloatBuffer().get(out);
        return out;
    }

    private static InputStream resource(String name) {
        InputStream in = GptGoldenParityTest.class.getClassLoader().getResourceAsStream(name);
        if (in == null) {
            throw new IllegalStateException("test resource not found on the class path: " + name);
        }
        return in;
    }

    private static int[] flatten(List<Object> rows) {
        return rows.stream().flatMap(r -> ((List<?>) r).stream()).mapToInt(v -> ((Number) v).intValue()).toArray();
    }

    private static String sha256(byte[] data) {
        try {
            byte[] d = java.security.MessageDigest.getInstance("SHA-256").digest(data);
            StringBuilder sb = new StringBuilder();
            for (byte v : d) {
                sb.append(String.format("%02x", v));
            }
            return sb.toString();
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
