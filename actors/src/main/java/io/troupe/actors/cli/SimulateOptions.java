package io.troupe.actors.cli;

import io.troupe.actors.schedule.AdaptivePolicy;
import io.troupe.actors.schedule.CostModel;
import io.troupe.actors.schedule.PipelineShape;
import io.troupe.actors.schedule.Schedule;
import io.troupe.actors.schedule.SchedulePolicy;
import io.troupe.actors.schedule.Schedules;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * The parsed options of {@link SimulateCommand}. {@link #parse} throws
 * {@code IllegalArgumentException} naming the bad option and value.
 */
final class SimulateOptions {
    private static final List<String> SCHEDULES = List.of("gpipe", "1f1b", "interleaved", "zb-h1", "zb-h2", "adaptive");

    private int stages = -1;
    private int microbatches = -1;
    private String scheduleName;
    private int virtual = -1;
    private double[] costUs = {1.0, 1.0, 1.0};
    private int tp = 1;
    private double[] tpCommUs = {0.0, 0.0};
    private String costText = "1,1,1";
    private double jitter;
    private long seed = 1;
    private final List<int[]> stragglerStages = new ArrayList<>();
    private final List<Double> stragglerFactors = new ArrayList<>();
    private double latencyUs;
    private double bandwidthBytesPerUs = Double.POSITIVE_INFINITY;
    private long activationBytes = 1L << 20;
    private long activationBudgetBytes = -1;
    private String svgFile;
    private String traceFile;
    private boolean help;
    private Schedule schedule;

    private SimulateOptions() {
    }

    /** The options {@code troupe simulate} knows, each with one value. */
    static final Set<String> KNOWN = Set.of("stages", "microbatches", "schedule", "virtual", "cost",
        "jitter", "straggler", "seed", "latency", "bandwidth", "activation-bytes", "activation-budget", "tp", "tp-comm",
        "svg", "trace");

    static SimulateOptions parse(String[] args) {
        SimulateOptions o = new SimulateOptions();
        for (String a : args) {
            if (a.equals("--help") || a.equals("-h")) {
                o.help = true;
                return o;
            }
        }
        for (Map.Entry<String, String> option : Options.parse(args, KNOWN, Set.of()).all()
            .entrySet()) {
            String name = "--" + option.getKey();
            String value = option.getValue();
            switch (name) {
                case "--stages" -> o.stages = positiveInt(name, value);
                case "--microbatches" -> o.microbatches = positiveInt(name, value);
                case "--schedule" -> {
                    if (!SCHEDULES.contains(value)) {
                        throw new IllegalArgumentException("unknown schedule: --schedule " + value
                                + " (known: " + String.join(", ", SCHEDULES) + ")");
                    }
                    o.scheduleName = value;
                }
                case "--virtual" -> o.virtual = positiveInt(name, value);
                case "--cost" -> o.parseCost(value);
                case "--jitter" -> {
                    o.jitter = number(name, value);
                    if (!(o.jitter >= 0.0 && o.jitter < 1.0)) {
                        throw new IllegalArgumentException("--jitter must be in [0, 1): --jitter " + value);
                    }
                }
                case "--straggler" -> o.parseStraggler(value);
                case "--seed" -> o.seed = longValue(name, value);
                case "--latency" -> o.latencyUs = nonNegative(name, value);
                case "--bandwidth" -> {
                    o.bandwidthBytesPerUs = number(name, value);
                    if (!(o.bandwidthBytesPerUs > 0.0)) {
                        throw new IllegalArgumentException("--bandwidth must be > 0 bytes/us: --bandwidth " + value);
                    }
                }
                case "--activation-bytes" -> o.activationBytes = nonNegativeLong(name, value);
                case "--activation-budget" -> {
                    o.activationBudgetBytes = nonNegativeLong(name, value);
                    if (o.activationBudgetBytes == 0) {
                        throw new IllegalArgumentException("--activation-budget must be > 0: --activation-budget 0");
                    }
                }
                case "--tp" -> o.tp = positiveInt(name, value);
                case "--tp-comm" -> o.parseTensorParallelComm(value);
                case "--svg" -> o.svgFile = value;
                case "--trace" -> o.traceFile = value;
                default -> throw new IllegalArgumentException("unknown option: " + name);
            }
        }
        o.check();
        return o;
    }

    private void check() {
        if (stages < 0) {
            throw new IllegalArgumentException("missing --stages");
        }
        if (microbatches < 0) {
            throw new IllegalArgumentException("missing --microbatches");
        }
        if (scheduleName == null) {
            throw new IllegalArgumentException("missing --schedule");
        }
        if (virtual < 0) {
            virtual = scheduleName.equals("interleaved") ? 2 : 1;
        } else if (virtual > 1 && !scheduleName.equals("interleaved") && !scheduleName.equals("adaptive")) {
            throw new IllegalArgumentException("--virtual " + virtual
                + " needs --schedule interleaved or adaptive, not "
                    + scheduleName);
        }
        for (int[] s : stragglerStages) {
            if (s[0] >= stages) {
                throw new IllegalArgumentException("--straggler stage out of range: stage=" + s[0] + ", stages="
                    + stages);
            }
        }
    }

    private void parseCost(String value) {
        String[] parts = value.split(",", -1);
        if (parts.length != 3) {
            throw new IllegalArgumentException("--cost needs three times F,B,W: --cost " + value);
        }
        double[] us = new double[3];
        for (int k = 0; k < 3; k++) {
            us[k] = nonNegative("--cost", parts[k]);
        }
        if (us[0] + us[1] + us[2] <= 0.0) {
            throw new IllegalArgumentException("--cost must not be all zero: --cost " + value);
        }
        costUs = us;
        costText = value;
    }

    private void parseStraggler(String value) {
        int colon = value.indexOf(':');
        if (colon <= 0 || colon == value.length() - 1) {
            throw new IllegalArgumentException("--straggler needs STAGE:FACTOR: --straggler " + value);
        }
        int stage;
        try {
            stage = Integer.parseInt(value.substring(0, colon));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--straggler stage is not an integer: --straggler " + value);
        }
        if (stage < 0) {
            throw new IllegalArgumentException("--straggler stage must be >= 0: --straggler " + value);
        }
        double factor = number("--straggler", value.substring(colon + 1));
        if (!(factor > 0.0) || Double.isInfinite(factor)) {
            throw new IllegalArgumentException("--straggler factor must be > 0: --straggler " + value);
        }
        stragglerStages.add(new int[] {stage});
        stragglerFactors.add(factor);
    }

    CostModel costModel() {
        CostModel cost = CostModel.uniform(stages, costUs[0], costUs[1], costUs[2]).withJitter(jitter, seed)
                .withLink(latencyUs, bandwidthBytesPerUs).withActivationBytes(activationBytes);
        if (tp > 1 || tpCommUs[0] > 0 || tpCommUs[1] > 0) {
            cost = cost.withTensorParallel(tp, tpCommUs[0], tpCommUs[1]);
        }
        for (int k = 0; k < stragglerStages.size(); k++) {
            cost = cost.withStraggler(stragglerStages.get(k)[0], stragglerFactors.get(k));
        }
        return cost;
    }

    /** The policy to simulate; builds the static schedule when one is asked for. */
    SchedulePolicy policy(CostModel cost) {
        if (scheduleName.equals("adaptive")) {
            PipelineShape shape = new PipelineShape(stages, virtual, microbatches);
            long budget = activationBudgetBytes > 0 ? activationBudgetBytes
                    : Math.max(1, stages * cost.activationBytes(0));
            return AdaptivePolicy.forCosts(shape, cost, budget);
        }
        if (activationBudgetBytes > 0) {
            throw new IllegalArgumentException("--activation-budget applies to --schedule adaptive only, not "
                    + scheduleName);
        }
        schedule = Schedules.byName(scheduleName, stages, virtual, microbatches);
        return schedule.asPolicy();
    }

    Schedule schedule() {
        return schedule;
    }

    int stages() {
        return stages;
    }

    int microbatches() {
        return microbatches;
    }

    int virtual() {
        return virtual;
    }

    /** {@code --tp-comm F,B}: the tp all-reduce time of each forward and each backward action, in the cost's unit. */
    private void parseTensorParallelComm(String value) {
        String[] parts = value.split(",");
        if (parts.length != 2) {
            throw new IllegalArgumentException("--tp-comm takes F,B (communication per forward and per backward): "
                + "--tp-comm=" + value);
        }
        for (int i = 0; i < 2; i++) {
            tpCommUs[i] = nonNegative("--tp-comm", parts[i].trim());
        }
    }

    int tp() {
        return tp;
    }

    String costText() {
        return costText;
    }

    double jitter() {
        return jitter;
    }

    long seed() {
        return seed;
    }

    String stragglerText() {
        if (stragglerStages.isEmpty()) {
            return "none";
        }
        List<String> parts = new ArrayList<>();
        for (int k = 0; k < stragglerStages.size(); k++) {
            parts.add(String.format(Locale.ROOT, "%d:%s", stragglerStages.get(k)[0], stragglerFactors.get(k)));
        }
        return String.join(",", parts);
    }

    String svgFile() {
        return svgFile;
    }

    String traceFile() {
        return traceFile;
    }

    boolean help() {
        return help;
    }

    private static int positiveInt(String name, String value) {
        try {
            int n = Integer.parseInt(value);
            if (n < 1) {
                throw new IllegalArgumentException(name + " must be >= 1: " + name + " " + value);
            }
            return n;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(name + " is not an integer: " + name + " " + value);
        }
    }

    private static long longValue(String name, String value) {
        try {
            return Long.parseLong(value);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(name + " is not an integer: " + name + " " + value);
        }
    }

    private static long nonNegativeLong(String name, String value) {
        long n = longValue(name, value);
        if (n < 0) {
            throw new IllegalArgumentException(name + " must be >= 0: " + name + " " + value);
        }
        return n;
    }

    private static double number(String name, String value) {
        try {
            double d = Double.parseDouble(value);
            if (Double.isNaN(d)) {
                throw new NumberFormatException();
            }
            return d;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(name + " is not a number: " + name + " " + value);
        }
    }

    private static double nonNegative(String name, String value) {
        double d = number(name, value);
        if (!(d >= 0.0) || Double.isInfinite(d)) {
            throw new IllegalArgumentException(name + " must be a finite number >= 0: " + name + " " + value);
        }
        return d;
    }
}
