package io.troupe.actors.bench;

import io.troupe.models.bench.TorchBaseline;
import io.troupe.models.gpt.GptConfig;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The PyTorch references of {@code scripts/bench pipeline}, measured in the same run: {@code pipeline_torch.py}
 * (beside this class; it imports the model and recipe of the step bench's {@code step_torch.py}) trains the same GPT
 * in two processes of one thread each over Gloo on 127.0.0.1, as a hand-written 1F1B pipeline of two stages
 * ({@code pp2}) or with DistributedDataParallel ({@code dp2}).
 */
final class PipelineTorchReference {
    private static final long RUN_TIMEOUT_S = 900;

    private final String python;

    PipelineTorchReference(String python) {
        this.python = python;
    }

    /** The median ms per step of rank 0's timed steps for {@code mode} (pp2 or dp2). */
    double msPerStep(String mode, GptConfig cfg, int batch, int microbatches, int steps, int warmup) {
        Path dir = null;
        try {
            dir = Files.createTempDirectory("troupe-pipeline-torch");
            copy("/io/troupe/models/bench/step_torch.py", dir.resolve("step_torch.py"));
            copy("/io/troupe/actors/bench/pipeline_torch.py", dir.resolve("pipeline_torch.py"));
            List<String> cmd = new ArrayList<>(List.of(python, dir.resolve("pipeline_torch.py").toString(), mode,
                Integer.toString(cfg.vocabSize()), Integer.toString(cfg.dModel()), Integer.toString(cfg.nLayer()),
                Integer.toString(cfg.nHead()), Integer.toString(cfg.seqLen()), Float.toString(cfg.lnEps()),
                Integer.toString(batch), Integer.toString(microbatches), Integer.toString(steps),
                Integer.toString(warmup)));
            ProcessBuilder pb = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.INHERIT);
            pb.environment().put("OMP_NUM_THREADS", "1");
            String last = TorchBaseline.lastLine("PyTorch " + mode + " reference (" + python + ")", pb, null,
                RUN_TIMEOUT_S);
            for (String field : last.trim().split("\\s+")) {
                if (field.startsWith("ms_per_step=")) {
                    return Double.parseDouble(field.substring("ms_per_step=".length()));
                }
            }
            throw new IllegalStateException("PyTorch " + mode + " reference line lacks ms_per_step=: " + last);
        } catch (IOException e) {
            throw new IllegalStateException("PyTorch " + mode + " reference (" + python + ") failed to start: "
                + e.getMessage(), e);
        } finally {
            if (dir != null) {
                for (String f : List.of("step_torch.py", "pipeline_torch.py")) {
                    dir.resolve(f).toFile().delete();
                }
                dir.toFile().delete();
            }
        }
    }

    /** One line naming the references' interpreter. */
    String describe() {
        return String.format(Locale.ROOT, "PyTorch (%s), 2 processes of 1 thread over Gloo on 127.0.0.1", python);
    }

    private static void copy(String resource, Path to) throws IOException {
        try (InputStream in = PipelineTorchReference.class.getResourceAsStream(resource)) {
            if (in == null) {
                throw new IllegalStateException("resource " + resource + " missing from the bench jar");
            }
            Files.copy(in, to, StandardCopyOption.REPLACE_EXISTING);
        }
    }
}
