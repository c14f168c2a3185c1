package io.troupe.actors.cli;

import io.troupe.models.checkpoint.CheckpointException;
import io.troupe.models.checkpoint.Checkpoints;
import io.troupe.models.data.TokenStream;
import io.troupe.models.infer.InferenceWeights;
import io.troupe.models.infer.KvPrecision;
import io.troupe.models.infer.Quantization;
import io.troupe.models.infer.ValidationLoss;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Set;

/**
 * {@code troupe eval --checkpoint DIR [--data FILE|DIR] [--quantize none|int8] [--kv-dtype f32|bf16]}: the
 * exact validation loss of a checkpoint over every non-overlapping window of the validation split
 * (the last 10% of FILE or of DIR's files, read as {@code train --data} reads them, or the built-in
 * corpus' validation stream). With int8 it evaluates the float32 weights too and prints the relative
 * difference and the weight memory ratio; with a bf16 KV cache, the float32 weights over that cache beside
 * the float32 one.
 */
final class EvalCommand {
    private EvalCommand() {
    }

    static final String USAGE = """
        usage: troupe eval --checkpoint DIR [--data FILE|DIR] [--quantize none|int8] [--kv-dtype f32|bf16]
        Prints the exact validation loss of a checkpoint (any training layout) over every
        non-overlapping window of the validation split; with --quantize int8, next to float32;
        with --kv-dtype bf16, the loss over a bfloat16 KV cache next to the float32 one.""";

    static int run(String[] args, PrintStream out, PrintStream err) {
        Options o = Options.parse(args, Set.of("checkpoint", "data", "quantize", "kv-dtype"), Set.of());
        if (!o.has("checkpoint")) {
            throw new UsageException("eval needs --checkpoint DIR");
        }
        Quantization q = quantization(o.has("quantize") ? o.get("quantize") : "none");
        KvPrecision kv = kvPrecision(o.has("kv-dtype") ? o.get("kv-dtype") : "f32");
        TokenStream val;
        try {
            val = TrainCommand.corpora(o.has("data") ? o.get("data") : "").val();
        } catch (IllegalArgumentException | java.io.UncheckedIOException e) {
            throw new UsageException("--data " + o.get("data") + ": " + e.getMessage());
        }
        try {
            Path dir = Checkpoints.resolve(CheckpointCommand.existingDirectory("--checkpoint", o.get("checkpoint")));
            InferenceWeights fp32 = InferenceWeights.load(dir, Quantization.NONE);
            out.printf(Locale.ROOT, "eval: %s, model %s, %s%n", dir, fp32.config().name(), val.description());
            String trainedOn = Checkpoints.readManifest(dir).dataSource();
            if (!o.has("data") && !trainedOn.startsWith("built-in")) {
                err.println("troupe eval: the checkpoint was trained on " + trainedOn
                    + "; this loss is over the built-in corpus (--data names the text to evaluate on)");
            }
            long t0 = System.nanoTime();
            ValidationLoss.Result base = ValidationLoss.exact(fp32, val, 16);
            out.printf(Locale.ROOT, "eval: fp32 val_loss=%.6f over %d windows (%d tokens), weights %d bytes, %.1f s%n",
                base.loss(), base.windows(), base.tokens(), fp32.weightBytes(), (System.nanoTime() - t0) / 1e9);
            String kvFields = "";
            if (kv != KvPrecision.F32) {
                t0 = System.nanoTime();
                ValidationLoss.Result r = ValidationLoss.exact(fp32, val, 16, kv);
                double rel = (r.loss() - base.loss()) / base.loss();
                out.printf(Locale.ROOT, "eval: fp32 weights, %s KV cache val_loss=%.6f (%+.4f%% against the f32"
                    + " cache), %.1f s%n", kv, r.loss(), 100 * rel, (System.nanoTime() - t0) / 1e9);
                kvFields = String.format(Locale.ROOT, " val_loss_kv_%s=%.6f kv_rel_diff=%.4f%%", kv, r.loss(),
                    100 * rel);
            }
            if (q == Quantization.INT8) {
                InferenceWeights int8 = InferenceWeights.load(dir, Quantization.INT8);
                t0 = System.nanoTime();
                ValidationLoss.Result r = ValidationLoss.exact(int8, val, 16);
                double rel = (r.loss() - base.loss()) / base.loss();
                double mem = (double) int8.weightBytes() / fp32.weightBytes();
                out.printf(Locale.ROOT, "eval: int8 val_loss=%.6f, weights %d bytes, %.1f s%n", r.loss(),
                    int8.weightBytes(),
                    (System.nanoTime() - t0) / 1e9);
                out.printf(Locale.ROOT,
                    "val_loss_fp32=%.6f val_loss_int8=%.6f rel_diff=%.4f%% weight_bytes_ratio=%.3f%s%n",
                    base.loss(), r.loss(), 100 * rel, mem, kvFields);
            } else {
                out.printf(Locale.ROOT, "val_loss=%.6f%s%n", base.loss(), kvFields);
            }
            return 0;
        } catch (CheckpointException e) {
            err.println("troupe eval: " + e.getMessage());
            return 4;
        }
    }

    static Quantization quantization(String s) {
        try {
            return Quantization.parse(s);
        } catch (IllegalArgumentException e) {
            throw new UsageException("--quantize: " + e.getMessage());
        }
    }

    static KvPrecision kvPrecision(String s) {
        try {
            return KvPrecision.parse(s);
        } catch (IllegalArgumentException e) {
            throw new UsageException("--kv-dtype: " + e.getMessage());
        }
    }

    static int positive(Options o, String name, int dflt) {
        if (!o.has(name)) {
            return dflt;
        }
        try {
            int v = Integer.parseInt(o.get(name).trim());
            if (v < 1) {
                throw new UsageException("--" + name + " must be >= 1: --" + name + "=" + o.get(name));
            }
            return v;
        } catch (NumberFormatException e) {
            throw new UsageException("--" + name + " must be an integer: --" + name + "=" + o.get(name));
        }
    }
}
