package io.troupe.models.train;

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
 * {@code loss.svg} (rewritten at the end), and {@code checkpoints/}.
 */
public final class RunOutputs implements AutoCloseable {
    public static final String CSV_HEADER = "step,loss,val_loss,lr,tokens_per_s,step_ms";
    /** Extra columns of pipelined runs: measured bubble fraction and gradient all-reduce time. */
    public static final String PIPELINE_COLUMNS = ",bubble,allreduce_ms";

    private final Path dir;
    private final BufferedWriter csv;
    private final List<StepMetrics> history = new ArrayList<>();
    private final String title;
    private final boolean pipelined;

    public RunOutputs(Path dir, String title) {
        this(dir, title, false);
    }

    /** With {@code pipelined}, rows carry the {@link #PIPELINE_COLUMNS} too (see {@link #record(StepMetrics, double, double)}). */
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
        write(m, String.format(Locale.ROOT, ",%.4f,%.3f", bubble, allReduceMs));
    }

    private void write(StepMetrics m, String extra) {
        history.add(m);
        try {
            csv.write(String.format(Locale.ROOT, "%d,%.6f,%s,%.6e,%.1f,%.3f", m.step(), m.loss(),
                Double.isNaN(m.valLoss()) ? "" : String.format(Locale.ROOT, "%.6f", m.valLoss()),
                m.lr(), m.tokensPerSec(), m.stepMs()) + extra);
            csv.newLine();
            csv.flush();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write metrics.csv in " + dir + ": " + e.getMessage(), e);
        }
    }

    public List<StepMetrics> history() {
        return history;
    }

    /** Writes {@code loss.svg} from the recorded history. */
    public void writePlot() {
        try {
            Files.writeString(dir.resolve("loss.svg"), LossChart.svg(title, history));
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
