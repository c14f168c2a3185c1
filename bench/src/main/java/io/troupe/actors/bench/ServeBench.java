package io.troupe.actors.bench;

import io.troupe.actors.bench.ServeStats.Run;
import io.troupe.actors.serve.ServeSettings;
import io.troupe.bench.BenchOptions;
import io.troupe.models.ParamSpec;
import io.troupe.models.checkpoint.Checkpoints;
import io.troupe.models.checkpoint.Manifest;
import io.troupe.models.checkpoint.ShardState;
import io.troupe.models.gpt.Gpt;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.infer.InferenceWeights;
import io.troupe.models.infer.KvPrecision;
import io.troupe.models.infer.Quantization;
import io.troupe.runtime.cpu.CpuDevice;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * {@code scripts/bench serve}: the serving path under load. Makes a checkpoint of the {@code small}
 * model (untrained weights; or takes {@code --checkpoint}), serves it on 127.0.0.1 and drives it
 * with {@code --clients} concurrent streaming clients sending {@code --requests} requests of
 * {@code --prompt-bytes}-byte prompts and {@code --max-tokens} new tokens: once with max batch 1
 * (one request at a time, the baseline) and once with continuous batching (max batch
 * {@code --max-batch}), in the same run. Time to first token is measured at the first event of the
 * stream; time per output token per request is (last event - first event) / (tokens - 1). Each
 * server first takes {@code --warmup} requests under the same load, untimed (the JIT compiles the
 * server's and the client's paths meanwhile); {@code --repeat N} runs the pair N times;
 * Before the timed runs, rounds of {@code --warmup} requests run until the JIT has settled (at most
 * {@code --settle-rounds}, default 40, 0: none) on a continuous-batching server, then on a max-batch 1 one,
 * then on a continuous one again. Both servers run with the
 * decode step thread on a CPU of its own ({@code troupe serve}'s default; {@code --isolate-step-core false}:
 * the OS places every thread), and with the prefill thread ({@code troupe serve}'s default;
 * {@code --prefill-thread false}: every prompt is prefilled in the steps; {@code --prefill-ahead N}: that many
 * requests prefilled ahead of a full batch, in both runs). Each client is one keep-alive
 * blocking socket ({@link SseSocketClient}; {@code --client jdk}: the JDK's HttpClient).
 * {@code --token-budget T} (default 256) caps the tokens of one step in both runs. Each run
 * prints the CPU its threads took, by group (model, server, client). The warm-up rounds send prompts
 * of their own, so no timed prompt finds its blocks cached by the warm-up; {@code --shared-prefix N}
 * makes every prompt (warm-up ones too) begin with the same N bytes (a system prompt), and
 * {@code --prefix-cache true|false} (default: {@code troupe serve}'s, on) sets prefix caching in both runs.
 *
 * <p>{@code --layout 1xN} runs the continuous-batching server on N pipeline stages in this process (the
 * max-batch 1 baseline stays on one stage). {@code --stage-hosts H} starts H {@code troupe serve-stage}
 * processes on 127.0.0.1 ({@link StageHostProcesses}, each reading the checkpoint itself) and serves both
 * runs, the baseline too, as {@code troupe serve --layout 1xN --stage-hosts ...} does: stage 0 in this
 * process, stages 1..N-1 on the hosts, steps over the data plane on 127.0.0.1 (N defaults to H + 1; hosts
 * beyond N - 1 are spares). Each run then also prints the CPU the host processes took.
 *
 * <p>Last line(s), one per repeat: {@code tokens_per_s_batch1=... tokens_per_s=... speedup=... ttft_p50_ms=...
 * tpot_p99_ms=... tpot_p99_ms_batch1=...} (ttft and tpot_p99 of the batched run; the last field that of
 * the max-batch 1 run). With {@code --stream false} the clients take whole responses
 * (no per-token events), and the latency columns are request latencies.
 */
public final class ServeBench {
    private ServeBench() {
    }

    public static void main(String[] args) throws Exception {
        Map<String, String> o = parse(args);
        int clients = Integer.parseInt(o.getOrDefault("clients", "16"));
        int requests = Integer.parseInt(o.getOrDefault("requests", "64"));
        int promptBytes = Integer.parseInt(o.getOrDefault("prompt-bytes", "32"));
        int maxTokens = Integer.parseInt(o.getOrDefault("max-tokens", "32"));
        int maxBatch = Integer.parseInt(o.getOrDefault("max-batch", "16"));
        boolean stream = Boolean.parseBoolean(o.getOrDefault("stream", "true"));
        String client = o.getOrDefault("client", "socket");
        if (!client.equals("socket") && !client.equals("jdk")) {
            throw new IllegalArgumentException("--client must be socket or jdk: --client=" + client);
        }
        ServeLoad.configure(stream, client.equals("socket"));
        int warmup = Integer.parseInt(o.getOrDefault("warmup", "256"));
        int maxSettleRounds = Integer.parseInt(o.getOrDefault("settle-rounds", "40"));
        int repeats = Integer.parseInt(o.getOrDefault("repeat", "1"));
        // tokens per step (decodes + prefill chunks) in both runs; a prompt up to this long is one step at max-batch 1
        int tokenBudget = Integer.parseInt(o.getOrDefault("token-budget", "256"));
        // --stage-hosts H: stages 1..N-1 of both runs on H stage-host processes (N defaults to H + 1)
        int stageHosts = Integer.parseInt(o.getOrDefault("stage-hosts", "0"));
        // --layout 1xN: the continuous-batching run on N pipeline stages (in this process, the max-batch 1
        // baseline stays 1x1; on stage hosts, both runs)
        int stages = io.troupe.models.parallel.Layout.parse(o.getOrDefault("layout",
            stageHosts > 0 ? "1x" + (stageHosts + 1) : "1x1"), 1).pp();
        if (stageHosts < 0 || stageHosts > 0 && (stages < 2 || stageHosts < stages - 1)) {
            throw new IllegalArgumentException("--stage-hosts must be 0, or at least the stages after the first"
                + " (--layout 1xN, N >= 2; more are spares): --stage-hosts=" + stageHosts + ", --layout=1x" + stages);
        }
        Quantization q = Quantization.parse(o.getOrDefault("quantize", "none"));
        // both runs: the step thread on a CPU of its own (troupe serve's default), or the OS placing every thread
        boolean isolate = Boolean.parseBoolean(o.getOrDefault("isolate-step-core", "true"));
        boolean prefillThread = Boolean.parseBoolean(o.getOrDefault("prefill-thread", "true"));
        // requests the prefill thread may prefill ahead of a full batch, in both runs (troupe serve's default 0)
        int prefillAhead = Integer.parseInt(o.getOrDefault("prefill-ahead", "0"));
        KvPrecision kv = KvPrecision.parse(o.getOrDefault("kv-dtype", "f32"));
        int sharedPrefix = Integer.parseInt(o.getOrDefault("shared-prefix", "0"));
        if (sharedPrefix < 0 || sharedPrefix >= promptBytes) {
            throw new IllegalArgumentException("--shared-prefix must be in [0, --prompt-bytes): --shared-prefix="
                + sharedPrefix + ", --prompt-bytes=" + promptBytes);
        }
        // --device cuda|cpu: both servers serve the whole model on one device (troupe serve --device)
        io.troupe.runtime.device.DeviceKind device = o.containsKey("device")
            ? io.troupe.runtime.device.DeviceKind.parse(o.get("device")) : null;
        if (device != null && (stages > 1 || stageHosts > 0 || q != Quantization.NONE)) {
            throw new IllegalArgumentException("--device serves float32 weights on one stage: drop --layout,"
                + " --stage-hosts and --quantize");
        }
        Path checkpoint = o.containsKey("checkpoint") ? Path.of(o.get("checkpoint"))
            : makeCheckpoint(GptConfig.preset(o.getOrDefault("model", "small")));
        InferenceWeights w = InferenceWeights.load(checkpoint, q);
        GptConfig cfg = w.config();
        if (stages > cfg.nLayer()) {
            throw new IllegalArgumentException("pipeline stages must be at most n_layer=" + cfg.nLayer()
                + ": --layout=1x" + stages);
        }
        if (promptBytes + maxTokens > cfg.seqLen()) {
            System.out.printf("note: prompt %d + max_tokens %d exceeds the context %d: requests end at the context"
                + " (finish_reason length)%n",
                promptBytes, maxTokens, cfg.seqLen());
        }
        System.out.printf(Locale.ROOT,
            "serve bench: model %s (d %d, %d layers, context %d), %s weights, %s KV cache, %d clients, %d requests, "
                + "%d-byte prompts, max_tokens %d, token budget %d, cpu: %s, %d cores; float32 linears: %s;"
                + " step core isolated: %s%n",
            cfg.name(), cfg.dModel(), cfg.nLayer(), cfg.seqLen(), q.name().toLowerCase(Locale.ROOT), kv, clients,
            requests,
            promptBytes, maxTokens, tokenBudget, cpuModel(), Runtime.getRuntime().availableProcessors(),
            io.troupe.models.infer.Fp32Linear.usesVectorApi() ? "Vector API kernel" : "axpy kernel", isolate);
        List<String> prompts = prompts(requests, promptBytes, sharedPrefix, 0);
        ServeRuns.configureWarmup(warmup, prompts(Math.max(1, warmup), promptBytes, sharedPrefix, 1));
        ServeSettings defaults = ServeSettings.defaults();
        boolean prefixCache = Boolean.parseBoolean(o.getOrDefault("prefix-cache",
            String.valueOf(defaults.prefixCache())));
        ServeSettings base = defaults.toBuilder().port(0).quantization(q).maxBatch(1)
            .tokenBudget(tokenBudget).maxQueue(4096).kvPrecision(kv).deadlineMs(600_000).isolateStepCore(isolate)
            .prefillThread(prefillThread).prefillAhead(prefillAhead).drainTimeoutMs(0).prefixCache(prefixCache)
            .build();
        System.out.printf(Locale.ROOT, "prompts: %d bytes, the first %d shared by all; prefix cache %s%n", promptBytes,
            sharedPrefix, prefixCache ? "on" : "off");
        List<Run[]> pairs = new ArrayList<>();
        if (device != null) {
            System.out.println("on a device: " + device.name().toLowerCase(Locale.ROOT)
                + " (DeviceKvCachedGpt; no prefill thread, no row splitter)");
        }
        try (Serving serving = device != null ? Serving.onDevice(w, checkpoint, device)
            : Serving.of(w, checkpoint, q, stageHosts, stages)) {
            // on stage hosts both runs take the layout; in this process the baseline runs on one stage
            int baselineStages = stageHosts > 0 ? stages : 1;
            String where = stageHosts > 0 ? ", " + stages + " stages (1.." + (stages - 1) + " on stage hosts)"
                : stages > 1 ? ", " + stages + " stages" : "";
            String batched = "continuous batching, max-batch " + maxBatch + where;
            String single = "max-batch 1" + (stageHosts > 0 ? where : "");
            // both modes' servers, then the batched one again: each run's code paths compiled for both (a mode the
            // JIT has not seen makes it recompile the kernels and the scheduler during the timed runs)
            ServeRuns.settle("continuous", serving, base.withMaxBatch(maxBatch), stages, clients, maxTokens,
                maxSettleRounds);
            ServeRuns.settle("max-batch 1", serving, base.withMaxBatch(1), baselineStages, clients, maxTokens,
                maxSettleRounds);
            ServeRuns.settle("continuous", serving, base.withMaxBatch(maxBatch), stages, clients, maxTokens,
                maxSettleRounds);
            for (int rep = 1; rep <= repeats; rep++) {
                String tag = repeats > 1 ? " (repeat " + rep + ")" : "";
                Run one = ServeRuns.run(single + tag, serving, base.withMaxBatch(1), baselineStages, prompts,
                    clients, maxTokens);
                Run many = ServeRuns.run(batched + tag, serving, base.withMaxBatch(maxBatch), stages, prompts,
                    clients, maxTokens);
                pairs.add(new Run[] {one, many});
            }
        }
        ServeStats.report(pairs, maxBatch);
    }

    /**
     * {@code n} ASCII prompts of {@code bytes} bytes, cut from the tinyshakespeare text when present, else a
     * pangram: the text's first {@code shared} bytes, then a passage of the text of its own; {@code salt} 0
     * for the timed prompts, 1 for the warm-up's (other passages).
     */
    private static List<String> prompts(int n, int bytes, int shared, int salt) throws IOException {
        Path data = Path.of("data/tinyshakespeare.txt");
        String text = Files.isRegularFile(data) ? Files.readString(data, StandardCharsets.ISO_8859_1)
            : "The quick brown fox jumps over the lazy dog. ".repeat(1 + 2 * n * bytes / 40);
        int own = bytes - shared;
        List<String> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            int at = (int) (((long) i * 7919 + salt * 3989L) * bytes % Math.max(1, text.length() - own));
            out.add(text.substring(0, shared) + text.substring(at, at + own));
        }
        return out;
    }

    /** Writes a committed checkpoint of {@code cfg} with its deterministic initial weights; returns its directory. */
    private static Path makeCheckpoint(GptConfig cfg) throws IOException {
        Path root = Files.createTempDirectory("troupe-serve-bench");
        root.toFile().deleteOnExit();
        ShardState shard = new ShardState(0);
        try (CpuDevice dev = new CpuDevice(1); Gpt gpt = Gpt.whole(cfg, dev, 1)) {
            gpt.initialize(1);
            float[] p = gpt.params().toFloatArray();
            for (ParamSpec s : gpt.parameters()) {
                int from = (int) s.localOffset();
                float[] v = Arrays.copyOfRange(p, from, from + (int) s.numel());
                shard.put(new ShardState.Entry(s.name(), s.shape(), v, new float[v.length], new float[v.length]));
            }
        }
        Manifest m = new Manifest(Manifest.FORMAT, 0, 0, 1, 1, "1x1x1", cfg, "none", List.of());
        return Checkpoints.write(root, m, Map.of("shard-00.bin", shard));
    }

    private static String cpuModel() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
                if (line.startsWith("model name")) {
                    return line.substring(line.indexOf(':') + 1).trim();
                }
            }
        } catch (IOException | RuntimeException ignored) {
            // not Linux
        }
        return System.getProperty("os.arch");
    }

    private static Map<String, String> parse(String[] args) {
        Set<String> known = Set.of("clients", "requests", "prompt-bytes", "max-tokens", "max-batch", "quantize",
            "checkpoint", "model", "stream", "layout", "warmup", "repeat", "token-budget",
            "settle-rounds", "isolate-step-core", "client", "shared-prefix", "prefix-cache",
            "prefill-thread", "prefill-ahead", "kv-dtype", "stage-hosts", "device");
        return new java.util.HashMap<>(BenchOptions.parse(args, "serve", "usage: scripts/bench serve [--"
            + String.join(" V] [--", new java.util.TreeSet<>(known)) + " V]", known, Set.of()).all());
    }
}
