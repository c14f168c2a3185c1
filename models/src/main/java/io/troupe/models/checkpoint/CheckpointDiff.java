package io.troupe.models.checkpoint;

import io.troupe.models.ParamSpec;
import io.troupe.models.gpt.GptPlacements;
import io.troupe.models.gpt.ParameterLayout;
import io.troupe.models.parallel.TensorParallelPlacement;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Compares two committed checkpoints completely: every tensor of every shard file, as whole tensors by
 * name (so checkpoints of different layouts compare: tensor-parallel shards are joined, a parameter is
 * found in whichever stage's file holds it), and the training state beside the tensors.
 *
 * <p>Tensors: each parameter, its AdamW moments (as {@code name.m} and {@code name.v}) and any other
 * file's tensors (error-feedback residuals, as {@code file:name}). Per tensor the largest absolute
 * difference, the largest difference relative to the first checkpoint's largest finite magnitude of
 * that tensor, and whether every float is bitwise the same (the raw bits: {@code -0.0} is not
 * {@code 0.0}, a NaN equals only the same NaN, and a NaN against anything else is an infinite
 * difference). A tensor of another shape is a difference, never compared element by element.
 *
 * <p>State: the step, the data cursor (the next batch drawn), the seed, the batch size, the model and
 * the AdamW step count of the shards; the data source's description is shown beside them (engines word
 * it differently, and the data it names shows in the tensors). A checkpoint that disagrees with itself
 * (shards at different optimizer steps, tensor-parallel members holding different copies of a
 * replicated parameter, one parameter in two files) is reported as such.
 *
 * <p>{@link Result#bitwise()} holds only when every tensor and every state value is the same, nothing
 * is in one checkpoint alone, neither disagrees with itself, and at least one tensor was compared;
 * {@code max_abs} and {@code max_rel} are over the parameters.
 */
public final class CheckpointDiff {
    /** A stage's shard file: {@code shard-gNN.bin}, or {@code shard-gNN-tMM.bin} for tp member MM. */
    private static final Pattern SHARD = Pattern.compile("shard-g?(\\d+)(?:-t(\\d+))?\\.bin");

    /** One tensor's difference. */
    public record Entry(String name, long numel, double maxAbs, double maxRel, boolean bitwise) {
        /** A parameter, not one of its optimizer moments ({@code .m}, {@code .v}) nor another file's tensor. */
        public boolean isParameter() {
            return !name.endsWith(".m") && !name.endsWith(".v") && !name.contains(":");
        }
    }

    /**
     * One value of the training state beside the tensors, in each checkpoint; one that does not {@code count}
     * (a description, which engines word differently) is shown and does not decide {@code bitwise}.
     */
    public record State(String name, String a, String b, boolean counts) {
        public boolean same() {
            return a.equals(b);
        }

        /** The same, or a description only. */
        public boolean agrees() {
            return same() || !counts;
        }
    }

    /**
     * @param entries      per tensor, by name
     * @param onlyInFirst  tensors the second checkpoint lacks
     * @param onlyInSecond tensors the first checkpoint lacks
     * @param state        the training state of both
     * @param problems     what makes one checkpoint disagree with itself (each names A or B)
     */
    public record Result(List<Entry> entries, List<String> onlyInFirst, List<String> onlyInSecond, long stepA,
                         long stepB, List<State> state, List<String> problems) {
        public boolean bitwise() {
            return !entries.isEmpty() && onlyInFirst.isEmpty() && onlyInSecond.isEmpty() && problems.isEmpty()
                && entries.stream().allMatch(Entry::bitwise) && state.stream().allMatch(State::agrees);
        }

        /** The largest absolute difference over the parameters (moments excluded). */
        public double maxAbs() {
            return entries.stream().filter(Entry::isParameter).mapToDouble(Entry::maxAbs).max().orElse(0);
        }

        /** The largest relative difference over the parameters (moments excluded). */
        public double maxRel() {
            return entries.stream().filter(Entry::isParameter).mapToDouble(Entry::maxRel).max().orElse(0);
        }

        /** The largest relative difference over the AdamW moments. */
        public double maxRelMoments() {
            return entries.stream().filter(e -> !e.isParameter()).mapToDouble(Entry::maxRel).max().orElse(0);
        }

        /**
         * {@code bitwise=true|false max_abs=... max_rel=...}: the last line of {@code troupe checkpoint diff}
         * (an infinite difference reads {@code inf}, as awk and the shell's tools read it).
         */
        public String summary() {
            return "bitwise=" + bitwise() + " max_abs=" + format(maxAbs()) + " max_rel=" + format(maxRel());
        }
    }

    private CheckpointDiff() {
    }

    /** {@code %.3e}, or {@code inf} / {@code nan}. */
    public static String format(double d) {
        if (Double.isNaN(d)) {
            return "nan";
        }
        if (Double.isInfinite(d)) {
            return d > 0 ? "inf" : "-inf";
        }
        return String.format(Locale.ROOT, "%.3e", d);
    }

    /** Loads (and verifies) both checkpoints, each a checkpoint directory or one holding {@code step-*} ones. */
    public static Result of(java.nio.file.Path a, java.nio.file.Path b) {
        Checkpoints.Loaded la = Checkpoints.load(Checkpoints.resolve(a));
        Checkpoints.Loaded lb = Checkpoints.load(Checkpoints.resolve(b));
        return of(la, lb);
    }

    public static Result of(Checkpoints.Loaded a, Checkpoints.Loaded b) {
        List<String> problems = new ArrayList<>();
        Tensors ta = tensors(a, "A", problems);
        Tensors tb = tensors(b, "B", problems);
        List<Entry> entries = new ArrayList<>();
        List<String> onlyA = new ArrayList<>();
        for (Map.Entry<String, Tensor> e : ta.byName.entrySet()) {
            Tensor y = tb.byName.get(e.getKey());
            if (y == null) {
                onlyA.add(e.getKey());
                continue;
            }
            entries.add(compare(e.getKey(), e.getValue(), y));
        }
        List<String> onlyB = new ArrayList<>();
        for (String n : tb.byName.keySet()) {
            if (!ta.byName.containsKey(n)) {
                onlyB.add(n);
            }
        }
        Manifest ma = a.manifest();
        Manifest mb = b.manifest();
        List<State> state = List.of(
            new State("step", Long.toString(ma.step()), Long.toString(mb.step()), true),
            new State("data_cursor", Long.toString(ma.dataCursor()), Long.toString(mb.dataCursor()), true),
            new State("seed", Long.toString(ma.seed()), Long.toString(mb.seed()), true),
            new State("batch_size", Integer.toString(ma.batchSize()), Integer.toString(mb.batchSize()), true),
            new State("model", ma.model().toString(), mb.model().toString(), true),
            new State("optimizer_step", ta.optimizerSteps, tb.optimizerSteps, true),
            new State("data_source", ma.dataSource(), mb.dataSource(), false));
        return new Result(entries, onlyA, onlyB, ma.step(), mb.step(), state, problems);
    }

    /** One whole tensor of a checkpoint: its values and its shape. */
    private record Tensor(float[] values, int[] shape) {
    }

    /** A checkpoint's tensors by name and the optimizer step(s) of its shard files. */
    private record Tensors(Map<String, Tensor> byName, String optimizerSteps) {
    }

    /**
     * Every tensor of {@code c} by name: a stage file's parameters and moments (tensor-parallel members'
     * shards joined into the whole tensor), any other file's tensors under {@code file:name}. What makes
     * {@code c} disagree with itself goes to {@code problems}, prefixed with {@code which}.
     */
    private static Tensors tensors(Checkpoints.Loaded c, String which, List<String> problems) {
        int tp = c.manifest().parsedLayout().tp();
        Map<String, Tensor> out = new TreeMap<>();
        Map<String, String> fileOf = new LinkedHashMap<>();
        // name -> [member][param, m, v]: the tp members' shards of a split parameter, joined below
        Map<String, Tensor[][]> members = new LinkedHashMap<>();
        TreeSet<Long> optimizerSteps = new TreeSet<>();
        Map<String, ParamSpec> specs = new LinkedHashMap<>();
        if (tp > 1) {
            for (ParamSpec s : ParameterLayout.full(c.manifest().model()).specs()) {
                specs.put(s.name(), s);
            }
        }
        for (Map.Entry<String, ShardState> f : c.shards().entrySet()) {
            String file = f.getKey();
            Matcher mt = SHARD.matcher(file);
            if (!mt.matches()) {
                for (ShardState.Entry e : f.getValue().entries().values()) {
                    put(out, file + ":" + e.name(), e.param(), e.shape());
                    put(out, file + ":" + e.name() + ".m", e.m(), e.shape());
                    put(out, file + ":" + e.name() + ".v", e.v(), e.shape());
                }
                continue;
            }
            optimizerSteps.add(f.getValue().optimizerStep());
            int member = mt.group(2) == null ? 0 : Integer.parseInt(mt.group(2));
            if ((mt.group(2) == null) != (tp == 1) || member >= tp) {
                problems.add(which + ": shard file " + file + " does not fit its layout " + c.manifest().layout());
                continue;
            }
            for (ShardState.Entry e : f.getValue().entries().values()) {
                String where = file;
                String seen = fileOf.putIfAbsent(e.name() + "#" + member, where);
                if (seen != null) {
                    problems.add(which + ": " + e.name() + " is in both " + seen + " and " + where);
                    continue;
                }
                Tensor[] t = {new Tensor(e.param(), e.shape()), new Tensor(e.m(), e.shape()),
                    new Tensor(e.v(), e.shape())};
                members.computeIfAbsent(e.name(), k -> new Tensor[tp][])[member] = t;
            }
        }
        String[] suffix = {"", ".m", ".v"};
        for (Map.Entry<String, Tensor[][]> e : members.entrySet()) {
            String name = e.getKey();
            Tensor[][] byMember = e.getValue();
            int missing = -1;
            for (int i = 0; i < tp && missing < 0; i++) {
                missing = byMember[i] == null ? i : -1;
            }
            if (missing >= 0) {
                problems.add(which + ": " + name + " has no copy or shard from tp member " + missing);
                continue;
            }
            if (tp == 1) {
                for (int k = 0; k < 3; k++) {
                    put(out, name + suffix[k], byMember[0][k].values(), byMember[0][k].shape());
                }
                continue;
            }
            ParamSpec spec = specs.get(name);
            if (spec == null) {
                problems.add(which + ": " + name + " is not a parameter of model " + c.manifest().model().name()
                    + ", so its tp shards cannot be joined");
                continue;
            }
            TensorParallelPlacement placement = GptPlacements.of(name, false);
            for (int k = 0; k < 3; k++) {
                if (placement instanceof TensorParallelPlacement.Split sp) {
                    float[][] shards = new float[tp][];
                    long expect = spec.numel() / tp;
                    String bad = null;
                    for (int i = 0; i < tp; i++) {
                        shards[i] = byMember[i][k].values();
                        if (shards[i] == null || shards[i].length != expect) {
                            bad = which + ": " + name + suffix[k] + " of tp member " + i + " has "
                                + (shards[i] == null ? "no values" : shards[i].length + " values") + ", its shard of "
                                + Arrays.toString(spec.shape()) + " is " + expect;
                        }
                    }
                    if (bad != null) {
                        problems.add(bad);
                        continue;
                    }
                    put(out, name + suffix[k], sp.split().unshard(shards, spec.shape()), spec.shape());
                } else {
                    for (int i = 1; i < tp; i++) {
                        if (!sameBits(byMember[0][k].values(), byMember[i][k].values())) {
                            problems.add(which + ": replicated " + name + suffix[k] + " differs between tp members 0"
                                + " and " + i);
                        }
                    }
                    put(out, name + suffix[k], byMember[0][k].values(), byMember[0][k].shape());
                }
            }
        }
        if (optimizerSteps.size() > 1) {
            problems.add(which + ": shard files at different optimizer steps " + optimizerSteps);
        }
        String steps = optimizerSteps.isEmpty() ? "-" : optimizerSteps.stream().map(String::valueOf)
            .reduce((x, y) -> x + "," + y).orElseThrow();
        return new Tensors(out, steps);
    }

    private static void put(Map<String, Tensor> out, String name, float[] values, int[] shape) {
        if (values != null) {
            out.put(name, new Tensor(values, shape));
        }
    }

    private static boolean sameBits(float[] x, float[] y) {
        if (x == null || y == null || x.length != y.length) {
            return Objects.equals(x, y);
        }
        for (int i = 0; i < x.length; i++) {
            if (Float.floatToRawIntBits(x[i]) != Float.floatToRawIntBits(y[i])) {
                return false;
            }
        }
        return true;
    }

    private static Entry compare(String name, Tensor a, Tensor b) {
        if (!Arrays.equals(a.shape(), b.shape())) {
            return new Entry(name + " (shapes " + Arrays.toString(a.shape()) + " vs " + Arrays.toString(b.shape())
                + ")", a.values().length, Double.POSITIVE_INFINITY, Double.POSITIVE_INFINITY, false);
        }
        return compare(name, a.values(), b.values());
    }

    static Entry compare(String name, float[] x, float[] y) {
        if (x.length != y.length) {
            return new Entry(name + " (sizes " + x.length + " vs " + y.length + ")", x.length, Double.POSITIVE_INFINITY,
                Double.POSITIVE_INFINITY, false);
        }
        double maxAbs = 0;
        double scale = 0;
        boolean bitwise = true;
        for (int i = 0; i < x.length; i++) {
            if (Float.isFinite(x[i])) {
                scale = Math.max(scale, Math.abs(x[i]));
            }
            if (Float.floatToRawIntBits(x[i]) == Float.floatToRawIntBits(y[i])) {
                continue;
            }
            bitwise = false;
            double d = Math.abs((double) x[i] - y[i]);
            // a NaN against anything but its own bits, or infinities of one sign against each other: no distance
            maxAbs = Math.max(maxAbs, Double.isNaN(d) ? Double.POSITIVE_INFINITY : d);
        }
        double rel = maxAbs == 0 ? 0 : maxAbs / Math.max(scale, Float.MIN_NORMAL);
        return new Entry(name, x.length, maxAbs, rel, bitwise);
    }
}
