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
 *
 * <p>A resumed run ({@link #RunOutputs(Path, String, boolean, boolean)}) whose directory already holds a
 * {@code metrics.csv} with its columns (or the single-device trainer's, which are their first ones) continues it:
 * the rows of the steps before the first one this run records stay, those from it on (steps the earlier run went
 * past its last checkpoint) are dropped, and this run's rows follow, so every step appears once. Until this run
 * records a step the file is left as it was; {@code loss.svg} draws the rows kept and this run's.
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
    private final String header;
    private BufferedWriter csv;
    private final List<StepMetrics> history = new ArrayList<>();
    /** The earlier run's rows (verbatim, padded to this run's columns) and their figures; null once written. */
    private List<String> carriedRows;
    private List<StepMetrics> carried = List.of();
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
        this(dir, title, pipelined, false);
    }

    /**
     * With {@code resumed}, a {@code metrics.csv} already in {@code dir} is continued rather than replaced (see the
     * class comment).
     */
    public RunOutputs(Path dir, String title, boolean pipelined, boolean resumed) {
        this.dir = dir;
        this.title = title;
        this.pipelined = pipelined;
        this.header = pipelined ? CSV_HEADER + PIPELINE_COLUMNS : CSV_HEADER;
        try {
            Files.createDirectories(dir);
            Path file = dir.resolve("metrics.csv");
            if (resumed && Files.isRegularFile(file)) {
                carriedRows = carriedRows(Files.readAllLines(file));
            }
            if (carriedRows == null) {
                openCsv(List.of());
            } else {
                List<StepMetrics> figures = new ArrayList<>();
                for (String row : carriedRows) {
                    StepMetrics m = figures(row);
                    if (m != null) {
                        figures.add(m);
                    }
                }
                carried = figures;
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create run directory " + dir + ": " + e.getMessage(), e);
        }
    }

    /**
     * The rows of an earlier {@code metrics.csv} this run can continue, padded to this run's columns; null when its
     * header is neither this run's nor a prefix of it. Rows of another width (a line cut short) are left out.
     */
    private List<String> carriedRows(List<String> lines) {
        if (lines.isEmpty() || !header.startsWith(lines.get(0))
            || !(header.length() == lines.get(0).length() || header.charAt(lines.get(0).length()) == ',')) {
            return null;
        }
        int columns = lines.get(0).split(",", -1).length;
        String pad = ",".repeat(header.split(",", -1).length - columns);
        List<String> rows = new ArrayList<>();
        for (String line : lines.subList(1, lines.size())) {
            if (line.split(",", -1).length == columns && stepOf(line) > 0) {
                rows.add(line + pad);
            }
        }
        return rows;
    }

    /** The step of a metrics row, or -1 when its first column is not one. */
    private static long stepOf(String row) {
        try {
            return Long.parseLong(row.substring(0, row.indexOf(',')));
        } catch (NumberFormatException | IndexOutOfBoundsException e) {
            return -1;
        }
    }

    /** The figures the loss chart draws of a metrics row; null when they do not parse. */
    private static StepMetrics figures(String row) {
        String[] c = row.split(",", -1);
        try {
            return new StepMetrics(Long.parseLong(c[0]), 0, Double.parseDouble(c[2]),
                c[3].isEmpty() ? Double.NaN : Double.parseDouble(c[3]), Float.parseFloat(c[4]),
                Double.parseDouble(c[5]), Double.parseDouble(c[6]), Double.parseDouble(c[7]));
        } catch (NumberFormatException e) {
            return null;
        }
    }

    /** Writes {@code metrics.csv} afresh: the header, then {@code rows}; later rows are appended. */
    private void openCsv(List<String> rows) throws IOException {
        Path tmp = dir.resolve("metrics.csv.tmp");
        try (BufferedWriter w = Files.newBufferedWriter(tmp)) {
            w.write(header);
            w.newLine();
            for (String row : rows) {
                w.write(row);
                w.newLine();
            }
        }
        Files.move(tmp, dir.resolve("metrics.csv"), java.nio.file.StandardCopyOption.REPLACE_EXISTING,
            java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        csv = Files.newBufferedWriter(dir.resolve("metrics.csv"), java.nio.file.StandardOpenOption.APPEND);
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
            if (carriedRows != null) {
                // the earlier run's steps before this one stay; from this one on, this run's rows replace them
                carriedRows.removeIf(row -> stepOf(row) >= m.step());
                carried = carried.stream().filter(c -> c.step() < m.step()).toList();
                openCsv(carriedRows);
                carriedRows = null;
            }
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

    /** The steps this run recorded (not those of an earlier run it continues). */
    public List<StepMetrics> history() {
        return history;
    }

    /** Writes {@code loss.svg} from the recorded history (to a temporary file, then renamed over the old one). */
    public void writePlot() {
        try {
            Path tmp = dir.resolve("loss.svg.tmp");
            List<StepMetrics> drawn = new ArrayList<>(carried);
            drawn.addAll(history);
            Files.writeString(tmp, LossChart.svg(title, drawn));
            Files.move(tmp, dir.resolve("loss.svg"), java.nio.file.StandardCopyOption.REPLACE_EXISTING,
                java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write loss.svg in " + dir + ": " + e.getMessage(), e);
        }
    }

    @Override
    public void close() {
        try {
            if (csv != null) {
                csv.close();
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
