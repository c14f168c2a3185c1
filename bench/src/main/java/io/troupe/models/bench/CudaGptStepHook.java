package io.troupe.models.bench;

import io.troupe.bench.BenchRecipe;
import io.troupe.bench.Median;
import io.troupe.models.data.Corpora;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.train.TrainConfig;
import io.troupe.models.train.Trainer;
import io.troupe.runtime.cuda.AttentionKernel;
import io.troupe.runtime.cuda.CudaDevice;
import io.troupe.runtime.cuda.GemmPrecision;
import io.troupe.runtime.cuda.bench.GptStepHook;
import java.io.PrintStream;
import java.util.Locale;

/**
 * The GPT-step part of the CUDA bench ({@code CudaBench --gpt-hook=io.troupe.models.bench.CudaGptStepHook},
 * run by {@code scripts/gpu-check.sh --run}): full training steps (forward, backward, clipping, AdamW)
 * of the small, big and medium (GPT-2-medium sized: d 1024, 24 layers, seq 1024) presets on the
 * GPU with BF16 GEMMs and the flash attention; median step time, tokens/s and model FLOPs
 * utilisation (6 * parameters * tokens per step, against the card's BF16 ceiling).
 */
public final class CudaGptStepHook implements GptStepHook {
    private static final int WARMUP_STEPS = 2;
    private static final int TIMED_STEPS = 5;
    /** System property: the presets to time, comma-separated (default small,big,medium). */
    static final String CONFIGS_PROPERTY = "troupe.gpu-check.gpt-configs";

    @Override
    public void run(CudaDevice dev, double ceilingTflops, PrintStream out) {
        dev.setGemmPrecision(GemmPrecision.BF16);
        dev.setAttentionKernel(AttentionKernel.FLASH);
        out.println();
        out.println("| model | batch x seq | params | ms/step (median of " + TIMED_STEPS
            + ") | tokens/s | MFU (6N, BF16 ceiling) |");
        out.println("|---|---|---|---|---|---|");
        for (String name : System.getProperty(CONFIGS_PROPERTY, "small,big,medium").split(",")) {
            GptConfig cfg = GptConfig.preset(name);
            TrainConfig tc = BenchRecipe.of(cfg, 1_000_000);
            try (Trainer trainer = new Trainer(tc, dev, Corpora.builtIn())) {
                for (int i = 0; i < WARMUP_STEPS; i++) {
                    trainer.trainStep();
                }
                double[] ms = new double[TIMED_STEPS];
                for (int i = 0; i < TIMED_STEPS; i++) {
                    ms[i] = trainer.trainStep().stepMs();
                }
                double median = Median.of(ms);
                long params = trainer.model().layout().numel();
                double tokens = (double) tc.batchSize() * cfg.seqLen();
                double mfu = 6.0 * params * tokens / (median * 1e-3) / (ceilingTflops * 1e12);
                out.printf(Locale.ROOT, "| %s | %d x %d | %,d | %.2f | %.0f | %.2f%% |%n", name, tc.batchSize(),
                    cfg.seqLen(), params, median, tokens / (median * 1e-3), 100 * mfu);
            }
        }
        out.println("1-stage vs 2-stage pipeline on one GPU: io.troupe.actors.bench.CudaPipelineBench"
            + " (run next by gpu-check.sh)");
    }
}
