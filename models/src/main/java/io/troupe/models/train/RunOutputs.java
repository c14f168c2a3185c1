package io.troupe.models.train;

import io.troupe.models.data.Batches;
import io.troupe.models.data.DataFingerprint;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * A run directory {@code runs/<id>/}: {@code metrics.csv} (one row per step, flushed as it goes),
 * {@code loss.svg} (redrawn at every step with a validation loss and at the end, so a long run can
 * be watched), {@code data.json} (what the run trains on, see {@link DataFingerprint}) and
 * {@code checkpoints/}.
 *
 * <p>Columns: {@code step} (1-based count of completed updates), {@code epoch} (passes over the
 * training windows completed after the step, fractional; empty when unknown), {@code loss},
 * {@code val_loss} (empty on steps without validation), {@code lr}, {@code grad_norm} (the global
 * gradient norm before clipping), {@code tokens_per_s}, {@code step_ms}; pipelined runs add
 * {@link #PIPELINE_COLUMNS}.
 */
public final class RunOutputs implements AutoCloseable {
    public static final String CSV_HEADER = "step,epoch,loss,val_loss,lr,grad_norm,tokens_per_s,step_ms";
    /**
     * Extra columns of pipelined runs: measured bubble fraction, gradient all-reduce time, the
     * busiest rank's bytes held after the step (MiB; empty when not measured) and the bytes one
     * rank sent for data-parallel gradients in the step (empty when not measured).
     */
    public static final String PIPELINE_COLUMNS = ",bubble,allreduce_ms,mem_peak_mib,grad_bytes_sent";

    private final Path dir;
    private final BufferedWriter csv;
    private final List<StepMetrics> history = new ArrayList<>();
    private final String title;
    private final boolean pipelined;
    private double epochsPerStep = Double.NaN;

    public RunOutputs(Path dir, String title) {
        this(dir, title, false);
    }

    /**
     * With {@code pipelined}, rows carry the {@link #PIPELINE_COLUMNS} too
     * (see {@link #record(StepMetrics, double, double)}).
     */
    public RunOutputs(Path dir, String title, boolean pipelined) {
        this.dir = dir;
        this.title = title;
        this.pipelined = pipelined;
        try {
            Files.createDirectories(dir);
            this.csv = Files.newBufferedWriter(dir.resolve("metrics.csv"));
            csv.write(pipelined ? CSV_HEADER + PIPELINE_COLUMNS : CSV_HEADER);
            csv.newLine();
            csv.flush();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create run directory " + dir + ": " + e.getMessage(), e);
        }
    }

    public Path dir() {
        return dir;
    }

    public Path checkpoints() {
        return dir.resolve("checkpoints");
    }

    /** Fills the {@code epoch} column: {@code step * batchSize / windowsPerEpoch} of {@code train}. */
    public void countEpochs(Batches train, int batchSize) {
        this.epochsPerStep = train.epochs(1, batchSize);
    }

    /** Writes {@code data.json}. */
    public void recordData(DataFingerprint data) {
        data.write(dir);
    }

    public void record(StepMetrics m) {
        if (pipelined) {
            throw new IllegalStateException("a pipelined run records bubble and all-reduce time too");
        }
        write(m, "");
    }

    /** Records a pipelined step. */
    public void record(StepMetrics m, double bubble, double allReduceMs) {
        if (!pipelined) {
            throw new IllegalStateException("not a pipelined run");
        }
        write(m, String.format(Locale.ROOT, ",%.4f,%.3f,,", bubble, allReduceMs));
    }

    /**
     * Records a pipelined step with its memory peak (MiB, NaN: not measured) and the gradient bytes
     * a rank sent ({@code < 0}: not measured).
     */
    public void record(StepMetrics m, double bubble, double allReduceMs, double memPeakMib, long gradBytesSent) {
        if (!pipelined) {
            throw new IllegalStateException("not a pipelined run");
        }
        write(m, String.format(Locale.ROOT, ",%.4f,%.3f,%s,%s", bubble, allReduceMs,
            Double.isNaN(memPeakMib) ? "" : String.format(Locale.ROOT, "%.2f", memPeakMib),
            gradBytesSent < 0 ? "" : Long.toString(gradBytesSent)));
    }

    private void write(StepMetrics m, String extra) {
        history.add(m);
        try {
            csv.write(String.format(Locale.ROOT, "%d,%s,%.6f,%s,%.6e,%.6f,%.1f,%.3f", m.step(),
                Double.isNaN(epochsPerStep) ? "" : String.format(Locale.ROOT, "%.5f", m.step() * epochsPerStep),
                m.loss(),
                Double.isNaN(m.valLoss()) ? "" : String.format(Locale.ROOT, "%.6f", m.valLoss()),
                m.lr(), m.gradNorm(), m.tokensPerSec(), m.stepMs()) + extra);
            csv.newLine();
            csv.flush();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write metrics.csv in " + dir + ": " + e.getMessage(), e);
        }
        if (!Double.isNaN(m.valLoss())) {
            writePlot();
        }
    }

    public List<StepMetrics> history() {
        return history;
    }

    /** Writes {@code loss.svg} from the recorded history (to a temporary file, then renamed over the old one). */
    public void writePlot() {
        try {
            Path tmp = dir.resolve("loss.svg.tmp");
            Files.writeString(tmp, LossChart.svg(title, history));
            Files.move(tmp, dir.resolve("loss.svg"), java.nio.file.StandardCopyOption.REPLACE_EXISTING,
                java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write loss.svg in " + dir + ": " + e.getMessage(), e);
        }
    }

    @Override
    public void close() {
        try {
            csv.close();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
