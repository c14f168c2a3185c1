package io.troupe.actors.cli;

import io.troupe.actors.schedule.CostModel;
import io.troupe.actors.schedule.IdleCause;
import io.troupe.actors.schedule.PipelineSimulator;
import io.troupe.actors.schedule.SchedulePolicy;
import io.troupe.actors.schedule.ScheduleValidator;
import io.troupe.actors.schedule.SimulationResult;
import io.troupe.actors.schedule.ValidationReport;
import io.troupe.actors.trace.ChromeTraceWriter;
import io.troupe.actors.trace.Timeline;
import io.troupe.actors.trace.TimelineSvg;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * {@code troupe simulate}: simulates one pipeline step of a schedule and prints per-stage figures; the
 * last line is always {@code bubble=<fraction> step=<time>}.
 *
 * <pre>
 * simulate --stages P --microbatches M --schedule gpipe|1f1b|interleaved|zb-h1|zb-h2|adaptive
 *          [--virtual V] [--cost F,B,W] [--jitter FRACTION] [--straggler STAGE:FACTOR]... [--seed S]
 *          [--latency US] [--bandwidth BYTES_PER_US] [--activation-bytes BYTES]
 *          [--activation-budget BYTES] [--tp T] [--tp-comm F,B] [--svg FILE] [--trace FILE]
 * </pre>
 * {@code --tp T} splits every stage by tensor parallelism over T devices (F, B and W compute / T);
 * {@code --tp-comm F,B} adds the tp all-reduce time of each forward and each backward.
 *
 * Exit codes: 0 done, 1 an output file could not be written, 2 bad options (the message names the
 * bad value).
 */
public final class SimulateCommand {
    static final String USAGE = """
        usage: troupe simulate --stages P --microbatches M
                               --schedule gpipe|1f1b|interleaved|zb-h1|zb-h2|adaptive [--virtual V]
                               [--cost F,B,W] [--jitter FRACTION] [--straggler STAGE:FACTOR]... [--seed S]
                               [--latency US] [--bandwidth BYTES_PER_US] [--activation-bytes BYTES]
                               [--activation-budget BYTES] [--tp T] [--tp-comm F,B] [--svg FILE]
                               [--trace FILE]
        Simulates one pipeline step of a schedule and prints per-stage figures; the last line is
        bubble=<fraction> step=<time>. --tp T splits every stage over T devices (F, B and W / T);
        --tp-comm F,B adds the tensor-parallel all-reduce time of each forward and backward.
        Exit codes: 0 done, 1 an output file could not be written, 2 bad options.""";

    private SimulateCommand() {
    }

    public static void main(String[] args) {
        System.exit(run(args, System.out, System.err));
    }

    /** The file and why it could not be written: {@code /proc/x.svg: no such file or directory}. */
    private static String written(IOException e) {
        if (e instanceof java.nio.file.FileSystemException f) {
            String why = f instanceof java.nio.file.NoSuchFileException ? "no such file or directory"
                : f instanceof java.nio.file.AccessDeniedException ? "permission denied"
                : f.getReason() != null ? f.getReason() : f.getClass().getSimpleName();
            return f.getFile() + ": " + why;
        }
        return String.valueOf(e.getMessage());
    }

    /** Runs the command; returns the exit code. */
    public static int run(String[] args, PrintStream out, PrintStream err) {
        SimulateOptions options;
        SchedulePolicy policy;
        CostModel cost;
        try {
            options = SimulateOptions.parse(args);
            if (options.help()) {
                out.println(USAGE);
                return 0;
            }
            cost = options.costModel();
            policy = options.policy(cost);
        } catch (IllegalArgumentException | UsageException e) {
            err.println("troupe simulate: " + e.getMessage() + " (troupe simulate --help)");
            return 2;
        }
        if (policy.fixedOrder()) {
            // validated in Schedules' tests for small shapes; checked here again at the asked shape
            ValidationReport report = ScheduleValidator.validate(options.schedule(), cost);
            if (!report.valid()) {
                err.println("simulate: " + String.join("; ", report.problems()));
                return 2;
            }
        }
        boolean wantTimeline = options.svgFile() != null || options.traceFile() != null;
        long startNs = System.nanoTime();
        SimulationResult result = new PipelineSimulator(cost, wantTimeline).run(policy);
        long elapsedMs = (System.nanoTime() - startNs) / 1_000_000;
        double busyUs = java.util.Arrays.stream(result.busyUs()).sum();
        if (!Double.isFinite(result.stepUs()) || !Double.isFinite(busyUs)) {
            // no table, chart or trace of infinite times (JSON has no Infinity; the chart's axis would never end)
            err.printf(Locale.ROOT, "troupe simulate: the times overflow a double (step=%s, busy=%s): use a smaller"
                + " --cost, --tp-comm, --latency or --straggler factor (troupe simulate --help)%n",
                result.stepUs(), busyUs);
            return 2;
        }
        String title = String.format(Locale.ROOT, "%s  p=%d%s m=%d  bubble=%.4f  step=%.3f", policy.name(),
                options.stages(), options.virtual() > 1 ? " v=" + options.virtual() : "", options.microbatches(),
                result.bubbleFraction(), result.stepUs());
        try {
            Timeline timeline = new Timeline(title, result.timeline().tracks());
            if (options.svgFile() != null) {
                TimelineSvg.write(timeline, Path.of(options.svgFile()));
            }
            if (options.traceFile() != null) {
                ChromeTraceWriter.write(timeline, Path.of(options.traceFile()));
            }
        } catch (IOException e) {
            // a file the options name that cannot be written is bad input, as a bad value is
            err.println("troupe simulate: cannot write " + written(e) + " (--svg, --trace)");
            return 2;
        }
        print(out, options, cost, result, elapsedMs);
        return 0;
    }

    private static void print(PrintStream out, SimulateOptions o, CostModel cost, SimulationResult r, long elapsedMs) {
        out.printf(Locale.ROOT, "schedule=%s stages=%d virtual=%d microbatches=%d tp=%d cost=%s jitter=%s seed=%d "
                        + "stragglers=%s latencyUs=%s bandwidthBytesPerUs=%s activationBytes=%d (simulated in %d ms)%n",
                r.policyName(), o.stages(), o.virtual(), o.microbatches(), o.tp(), o.costText(), o.jitter(), o.seed(),
                o.stragglerText(), cost.latencyUs(), cost.bandwidthBytesPerUs(), cost.activationBytes(0), elapsedMs);
        out.printf(Locale.ROOT, "%6s %12s %12s %8s %12s %12s %12s %12s %6s %14s%n", "stage", "busy", "idle", "bubble",
                "idle:input", "idle:comm", "idle:memcap", "idle:drained", "peak", "peak_bytes");
        int p = r.shape().stages();
        int step = p <= 16 ? 1 : Math.max(1, p / 16);
        for (int s = 0; s < p; s++) {
            if (s % step != 0 && s != p - 1) {
                continue;
            }
            out.printf(Locale.ROOT, "%6d %12.3f %12.3f %8.4f %12.3f %12.3f %12.3f %12.3f %6d %14d%n", s,
                    r.busyUs()[s], r.idleUs(s), r.bubbleFraction(s), r.idleUs(s, IdleCause.INPUT),
                    r.idleUs(s, IdleCause.COMMUNICATION), r.idleUs(s, IdleCause.MEMORY_CAP),
                    r.idleUs(s, IdleCause.DRAINED), r.peakLiveActivations()[s], r.peakActivationBytes()[s]);
        }
        if (step > 1) {
            out.printf("(every %d-th stage shown)%n", step);
        }
        double busy = 0;
        for (double b : r.busyUs()) {
            busy += b;
        }
        List<String> causes = new ArrayList<>();
        for (IdleCause c : IdleCause.values()) {
            causes.add(String.format(Locale.ROOT, "%s=%.3f", c.label(), r.totalIdleUs(c)));
        }
        out.printf(Locale.ROOT, "total busy=%.3f idle by cause: %s; peak activations max=%d (%d bytes)%n", busy,
                String.join(" ", causes), r.maxPeakLiveActivations(), r.maxPeakActivationBytes());
        out.printf(Locale.ROOT, "bubble=%.4f step=%.3f%n", r.bubbleFraction(), r.stepUs());
    }
}
