package io.troupe.actors.cli;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigValue;
import com.typesafe.config.ConfigValueFactory;
import com.typesafe.config.ConfigValueType;
import io.troupe.actors.cluster.JobDefaults;
import io.troupe.models.data.ValidationPlan;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.memory.MemoryOptions;
import io.troupe.models.optim.AdamWConfig;
import io.troupe.models.parallel.Layout;
import io.troupe.models.train.TrainConfig;
import io.troupe.runtime.device.DeviceKind;
import java.nio.file.Path;
import java.util.Map;

/**
 * {@code troupe.train} settings, read once: reference.conf defaults, then {@code --config FILE},
 * then command-line flags. Every bad value is refused with its key and value.
 */
record TrainSettings(TrainConfig train, DeviceKind device, int threads, String data, String out, String resume,
                     Layout layout, String schedule, String partition, long stepTimeoutMs, String engine,
                     long bucketBytes, boolean sequenceParallel, MemoryOptions memory) {

    /** Whether the layout asks for more than the single-device trainer. */
    boolean parallel() {
        return layout.worldSize() > 1 || layout.virtualStages() > 1;
    }

    /** Flag name → config key. */
    static final Map<String, String> FLAG_KEYS = Map.ofEntries(
        Map.entry("model", "model"), Map.entry("steps", "steps"), Map.entry("batch", "batch-size"),
        Map.entry("microbatches", "microbatches"), Map.entry("lr", "lr"), Map.entry("min-lr", "min-lr"),
        Map.entry("warmup", "warmup-steps"), Map.entry("grad-clip", "grad-clip"), Map.entry("seed", "seed"),
        Map.entry("eval-interval", "eval-interval"), Map.entry("eval-batches", "eval-batches"),
        Map.entry("checkpoint-interval", "checkpoint-interval"), Map.entry("data", "data"),
        Map.entry("device", "device"), Map.entry("threads", "threads"), Map.entry("out", "out"),
        Map.entry("layout", "layout"), Map.entry("schedule", "schedule"), Map.entry("virtual", "virtual-stages"),
        Map.entry("partition", "partition"), Map.entry("step-timeout-ms", "step-timeout-ms"),
        Map.entry("engine", "engine"), Map.entry("bucket-kib", "bucket-kib"),
        Map.entry("sequence-parallel", "sequence-parallel"), Map.entry("zero", "zero"),
        Map.entry("recompute", "recompute"), Map.entry("grad-compression", "grad-compression"));

    /** Options whose value is a real number, whatever its default in reference.conf looks like. */
    static final java.util.Set<String> REAL_FLAGS = java.util.Set.of("lr", "min-lr", "grad-clip");

    /**
     * The most CPU threads a device may be given: past it a step slows to a crawl on thread hand-offs (1000
     * threads take ten times as long as 16 for the tiny model), so a larger count is a typo.
     */
    static final int MAX_THREADS = 1024;

    /** Options that take no value. */
    static final java.util.Set<String> SWITCHES = java.util.Set.of("sequence-parallel");

    static TrainSettings from(Options o) {
        Config cfg = ConfigFactory.defaultReference();
        if (o.has("config")) {
            Path file = Path.of(o.get("config"));
            try {
                cfg = ConfigFiles.parse(file).withFallback(cfg).resolve();
            } catch (ConfigException e) {
                throw new UsageException("--config " + file + ": " + e.getMessage());
            }
        }
        Config t = cfg.getConfig("troupe.train");
        Config reference = JobDefaults.reference();
        for (Map.Entry<String, String> e : FLAG_KEYS.entrySet()) {
            if (o.has(e.getKey())) {
                String value = o.get(e.getKey());
                if (!e.getValue().equals("eval-batches")) { // a count or "all": evalBatches checks it
                    checkType(e.getKey(), value, reference.getValue(e.getValue()));
                }
                t = t.withValue(e.getValue(), ConfigValueFactory.fromAnyRef(value));
            }
        }
        try {
            GptConfig model = GptConfig.preset(t.getString("model"));
            int steps = positive(t, "steps");
            int batch = JobDefaults.batchSize(t.getInt("batch-size"), model);
            int warmup = JobDefaults.warmupSteps(t.getInt("warmup-steps"), steps);
            int threads = t.getInt("threads");
            if (threads < 0 || threads > MAX_THREADS) {
                throw new UsageException("threads must be in [0, " + MAX_THREADS + "] (0: every core): threads="
                    + threads);
            }
            if (threads == 0) {
                threads = Runtime.getRuntime().availableProcessors();
            }
            String schedule = t.getString("schedule");
            int v = JobDefaults.virtualStages(t.getInt("virtual-stages"), schedule);
            Layout layout = Layout.parse(t.getString("layout"), v);
            int micro = JobDefaults.microbatches(t.getInt("microbatches"), layout, batch);
            if (t.getInt("microbatches") == 0 && batch % (layout.dp() * micro) != 0) {
                throw new UsageException(derivedMicrobatchesMisfit(layout, batch, micro));
            }
            String engine = t.getString("engine");
            if (!engine.equals("cluster") && !engine.equals("in-process")) {
                throw new UsageException("engine must be cluster or in-process: engine=" + engine);
            }
            if (t.getBoolean("sequence-parallel") && layout.tp() == 1) {
                throw new UsageException("sequence-parallel needs tp > 1 (it splits the residual stream over the"
                    + " tensor-parallel ranks): layout=" + layout);
            }
            long bucketKib = t.getLong("bucket-kib");
            if (bucketKib < 1) {
                throw new UsageException("bucket-kib must be >= 1: bucket-kib=" + bucketKib);
            }
            TrainConfig train = new TrainConfig(model, batch, micro, steps,
                (float) t.getDouble("lr"), (float) t.getDouble("min-lr"), warmup, (float) t.getDouble("grad-clip"),
                t.getLong("seed"), t.getInt("eval-interval"), evalBatches(t), t.getInt("checkpoint-interval"),
                new AdamWConfig((float) t.getDouble("beta1"), (float) t.getDouble("beta2"),
                    (float) t.getDouble("adam-eps"),
                    (float) t.getDouble("weight-decay")));
            long timeout = t.getLong("step-timeout-ms");
            return new TrainSettings(train, DeviceKind.parse(t.getString("device")), threads, t.getString("data"),
                t.getString("out"), o.get("resume"), layout, schedule, t.getString("partition"), timeout, engine,
                bucketKib * 1024, t.getBoolean("sequence-parallel"),
                MemoryOptions.parse(t.getInt("zero"), t.getString("recompute"), t.getString("grad-compression")));
        } catch (ConfigException e) {
            throw new UsageException("bad training setting: " + e.getMessage());
        } catch (IllegalArgumentException e) {
            throw new UsageException(e.getMessage());
        }
    }

    /**
     * Why the micro-batch count derived from the layout and batch (no {@code --microbatches} given) cannot split
     * the batch, and which options to pass instead.
     */
    static String derivedMicrobatchesMisfit(Layout layout, int batch, int micro) {
        int group = layout.dp() * micro;
        return "layout " + layout + ", batch " + batch + ": no --microbatches given, so the micro-batches per replica"
            + " were derived from dp=" + layout.dp() + ", pp=" + layout.pp() + " and batch=" + batch
            + " as min(2 x pp, batch / dp) = " + micro + ", and dp x " + micro + " = " + group
            + " does not divide the batch; pass --batch and --microbatches M with dp x M dividing the batch"
            + " (e.g. --batch " + group * Math.max(1, batch / group) + " --microbatches " + micro + ")";
    }

    /**
     * A flag's value must parse as its key's type in reference.conf (a number where a number is expected).
     * HOCON keeps {@code grad-clip = 1.0} as an int, so the default's type cannot tell a real-valued key
     * from a count: {@link #REAL_FLAGS} does.
     */
    private static void checkType(String flag, String value, ConfigValue reference) {
        if (reference.valueType() != ConfigValueType.NUMBER) {
            return;
        }
        boolean whole = !REAL_FLAGS.contains(flag)
            && (reference.unwrapped() instanceof Integer || reference.unwrapped() instanceof Long);
        boolean small = reference.unwrapped() instanceof Integer;
        String expected = !whole ? "a number"
            : small ? "a whole number of at most " + Integer.MAX_VALUE : "a whole number of at most " + Long.MAX_VALUE;
        try {
            if (whole) {
                long v = Long.parseLong(value.trim());
                if (small && v != (int) v) {
                    throw new NumberFormatException("out of range");
                }
            } else {
                Double.parseDouble(value.trim());
            }
        } catch (NumberFormatException e) {
            throw new UsageException("--" + flag + ": expected " + expected + ", got '" + value + "'");
        }
    }

    /** {@code eval-batches}: a count >= 1, or {@code all} (every window of the validation split). */
    static int evalBatches(Config t) {
        String v = t.getValue("eval-batches").unwrapped().toString().trim();
        if (v.equals("all")) {
            return ValidationPlan.ALL;
        }
        try {
            int n = Integer.parseInt(v);
            if (n >= 1) {
                return n;
            }
        } catch (NumberFormatException e) {
            // refused below
        }
        throw new UsageException("eval-batches must be a count in [1, " + Integer.MAX_VALUE + "] or all: eval-batches="
            + v);
    }

    private static int positive(Config t, String key) {
        int v = t.getInt(key);
        if (v < 1) {
            throw new UsageException(key + " must be >= 1: " + key + "=" + v);
        }
        return v;
    }
}
