package io.troupe.actors.bench;

import io.troupe.actors.serve.InferenceServer;
import io.troupe.actors.serve.ServeSettings;
import io.troupe.bench.BenchOptions;
import io.troupe.bench.Median;
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
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

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
    /** The warm-up rounds' prompts: none of them a timed one. */
    private static List<String> warmPrompts;

    private ServeBench() {
    }

    /** Streaming clients (TTFT and TPOT measured) or whole responses (throughput only). */
    private static boolean stream = true;

    /** The load generator's clients: one blocking socket each ({@link SseSocketClient}), or the JDK's HttpClient. */
    private static boolean socketClient = true;

    /** Requests sent under load before each timed run (not counted). */
    private static int warmup = 256;

    private record Run(double tokensPerS, long tokens, double seconds, double ttftP50Ms, double ttftP99Ms,
        double tpotP50Ms,
                       double tpotP99Ms) {
    }

    public static void main(String[] args) throws Exception {
        Map<String, String> o = parse(args);
        int clients = Integer.parseInt(o.getOrDefault("clients", "16"));
        int requests = Integer.parseInt(o.getOrDefault("requests", "64"));
        int promptBytes = Integer.parseInt(o.getOrDefault("prompt-bytes", "32"));
        int maxTokens = Integer.parseInt(o.getOrDefault("max-tokens", "32"));
        int maxBatch = Integer.parseInt(o.getOrDefault("max-batch", "16"));
        stream = Boolean.parseBoolean(o.getOrDefault("stream", "true"));
        String client = o.getOrDefault("client", "socket");
        if (!client.equals("socket") && !client.equals("jdk")) {
            throw new IllegalArgumentException("--client must be socket or jdk: --client=" + client);
        }
        socketClient = client.equals("socket");
        warmup = Integer.parseInt(o.getOrDefault("warmup", "256"));
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
        warmPrompts = prompts(Math.max(1, warmup), promptBytes, sharedPrefix, 1);
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
            settle("continuous", serving, base.withMaxBatch(maxBatch), stages, clients, maxTokens, maxSettleRounds);
            settle("max-batch 1", serving, base.withMaxBatch(1), baselineStages, clients, maxTokens, maxSettleRounds);
            settle("continuous", serving, base.withMaxBatch(maxBatch), stages, clients, maxTokens, maxSettleRounds);
            for (int rep = 1; rep <= repeats; rep++) {
                String tag = repeats > 1 ? " (repeat " + rep + ")" : "";
                Run one = run(single + tag, serving, base.withMaxBatch(1), baselineStages, prompts, clients,
                    maxTokens);
                Run many = run(batched + tag, serving, base.withMaxBatch(maxBatch), stages, prompts, clients,
                    maxTokens);
                pairs.add(new Run[] {one, many});
            }
        }
        System.out.println();
        System.out.println("| repeat | mode | tokens/s | TTFT p50 ms | TTFT p99 ms | TPOT p50 ms | TPOT p99 ms |"
            + " speedup |");
        System.out.println("|---|---|---|---|---|---|---|---|");
        for (int i = 0; i < pairs.size(); i++) {
            Run one = pairs.get(i)[0];
            Run many = pairs.get(i)[1];
            row(i + 1, "max-batch 1", one, 1.0);
            row(i + 1, "continuous, max-batch " + maxBatch, many, many.tokensPerS() / one.tokensPerS());
        }
        for (Run[] pair : pairs) {
            Run one = pair[0];
            Run many = pair[1];
            if (!stream) {
                // whole responses: the latency columns above are request latencies; no TTFT or TPOT
                System.out.printf(Locale.ROOT,
                    "tokens_per_s_batch1=%.1f tokens_per_s=%.1f speedup=%.2f request_ms_p50=%.1f%n",
                    one.tokensPerS(), many.tokensPerS(), many.tokensPerS() / one.tokensPerS(), many.ttftP50Ms());
            } else {
                System.out.printf(Locale.ROOT,
                    "tokens_per_s_batch1=%.1f tokens_per_s=%.1f speedup=%.2f ttft_p50_ms=%.1f tpot_p99_ms=%.2f"
                        + " tpot_p99_ms_batch1=%.2f%n",
                    one.tokensPerS(), many.tokensPerS(), many.tokensPerS() / one.tokensPerS(), many.ttftP50Ms(),
                    many.tpotP99Ms(), one.tpotP99Ms());
            }
        }
    }

    /** A round's JIT compile time below this share of its wall time: the JIT has settled. */
    private static final double SETTLED_JIT_SHARE = 0.02;

    /**
     * Runs rounds of {@code --warmup} requests on a server of settings {@code s}, untimed, until the JIT's
     * compile time in a round is under {@link #SETTLED_JIT_SHARE} of the round's wall time, at most
     * {@code maxRounds}: the HTTP stack alone is thousands of methods, which the JIT is still compiling
     * (a third of a core) long after the first few hundred requests, and compiled code serves both timed
     * runs alike. Prints the rounds taken and the last round's share.
     */
    private static void settle(String mode, Serving serving, ServeSettings s, int stages, int clients,
                               int maxTokens, int maxRounds) throws Exception {
        if (maxRounds <= 0) {
            return;
        }
        java.lang.management.CompilationMXBean jit = java.lang.management.ManagementFactory.getCompilationMXBean();
        if (jit == null || !jit.isCompilationTimeMonitoringSupported()) {
            System.out.println("warm-up: the JVM reports no compile time; no settling rounds");
            return;
        }
        List<String> round = warmPrompts;
        try (InferenceServer server = serving.start(s, stages)) {
            HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
            URI uri = URI.create("http://127.0.0.1:" + server.port() + "/v1/completions");
            double share = Double.NaN;
            int r = 0;
            long t0 = System.nanoTime();
            while (r < maxRounds) {
                long jit0 = jit.getTotalCompilationTime();
                long w0 = System.nanoTime();
                load(http, uri, round, clients, maxTokens);
                r++;
                share = (jit.getTotalCompilationTime() - jit0) / ((System.nanoTime() - w0) / 1e6);
                if (share < SETTLED_JIT_SHARE) {
                    break;
                }
            }
            System.out.printf(Locale.ROOT, "warm-up, %s: %d rounds of %d requests (%.1f s) until the JIT settled: "
                + "compile time %.1f%% of the last round's wall time%s%n", mode, r, round.size(),
                (System.nanoTime() - t0) / 1e9, 100 * share, share < SETTLED_JIT_SHARE ? "" : " (not settled)");
        }
    }

    private static void row(int repeat, String name, Run r, double speedup) {
        System.out.printf(Locale.ROOT, "| %d | %s | %.1f | %.1f | %.1f | %.2f | %.2f | %.2f |%n", repeat, name,
            r.tokensPerS(), r.ttftP50Ms(), r.ttftP99Ms(), r.tpotP50Ms(), r.tpotP99Ms(), speedup);
    }

    private static Run run(String name, Serving serving, ServeSettings s, int stages, List<String> prompts,
                           int clients, int maxTokens) throws Exception {
        try (InferenceServer server = serving.start(s, stages)) {
            HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
            URI uri = URI.create("http://127.0.0.1:" + server.port() + "/v1/completions");
            // warm-up under the same load, untimed: the JIT compiles the step, the server's and the
            // client's paths before the clock starts (compiling takes a core for seconds on a small host)
            if (warmup > 0) {
                load(http, uri, warmPrompts, clients, maxTokens);
            }
            URI metricsUri = URI.create("http://127.0.0.1:" + server.port() + "/metrics");
            double[] m0 = stepCycle(http, metricsUri);
            CpuByGroup cpu = CpuByGroup.start();
            long hostCpu0 = serving.hostCpuNs();
            long t0 = System.nanoTime();
            List<double[]> results = load(http, uri, prompts, clients, maxTokens);
            double seconds = (System.nanoTime() - t0) / 1e9;
            long hostCpu1 = serving.hostCpuNs();
            System.out.println(name + ": " + cpu.report());
            if (hostCpu0 >= 0 && hostCpu1 >= 0) {
                System.out.printf(Locale.ROOT, "%s: stage-host processes %.0f%% of a core%n", name,
                    100 * (hostCpu1 - hostCpu0) / 1e9 / seconds);
            }
            double[] m1 = stepCycle(http, metricsUri);
            double steps = m1[0] - m0[0];
            if (steps > 0 && m1[1] > m0[1]) {
                // per step: wall time of the whole run, then the decode loop's forward and its work
                // between forwards, and the events thread's delivery of the step's tokens
                System.out.printf(Locale.ROOT,
                    "%s: %.0f steps, %.2f tokens/step; per step: cycle %.3f ms = forward %.3f ms + schedule %.3f ms"
                        + " (sample %.3f ms) + idle %.3f ms; token delivery %.3f ms (events thread)%n",
                    name, steps, (m1[4] - m0[4]) / steps, seconds * 1e3 / steps, (m1[1] - m0[1]) * 1e3 / steps,
                    (m1[2] - m0[2]) * 1e3 / steps, (m1[5] - m0[5]) * 1e3 / steps,
                    (seconds - (m1[1] - m0[1]) - (m1[2] - m0[2])) * 1e3 / steps, (m1[3] - m0[3]) * 1e3 / steps);
                double beside = m1[6] - m0[6];
                if (beside > 0) {
                    System.out.printf(Locale.ROOT, "%s: %.0f of %d requests prefilled beside the steps, %.3f ms of the"
                        + " prefill thread's forward each%n", name, beside, prompts.size(),
                        (m1[7] - m0[7]) * 1e3 / beside);
                }
            }
            if (results.size() != prompts.size()) {
                throw new IllegalStateException(name + ": " + results.size() + " of " + prompts.size()
                    + " requests completed");
            }
            long tokens = 0;
            double[] ttft = new double[results.size()];
            List<Double> tpot = new ArrayList<>();
            for (int i = 0; i < results.size(); i++) {
                double[] r = results.get(i);
                tokens += (long) r[0];
                ttft[i] = r[1];
                if (r[0] > 1) {
                    tpot.add(r[2]);
                }
            }
            double[] tp = tpot.stream().mapToDouble(Double::doubleValue).toArray();
            Run run = new Run(tokens / seconds, tokens, seconds, Median.of(ttft), pct(ttft, 0.99), Median.of(tp),
                pct(tp, 0.99));
            System.out.printf(Locale.ROOT,
                "%s: %d tokens in %.2f s = %.1f tokens/s; TTFT p50 %.1f ms p99 %.1f ms; TPOT p50 %.2f ms p99 %.2f ms%n",
                name, tokens, seconds, run.tokensPerS(), run.ttftP50Ms(), run.ttftP99Ms(), run.tpotP50Ms(),
                    run.tpotP99Ms());
            return run;
        }
    }

    /** Sends {@code prompts} from {@code clients} concurrent client threads; the per-request results. */
    private static List<double[]> load(HttpClient http, URI uri, List<String> prompts, int clients, int maxTokens)
        throws InterruptedException {
        List<double[]> results = Collections.synchronizedList(new ArrayList<>());
        AtomicInteger next = new AtomicInteger();
        List<Thread> threads = new ArrayList<>();
        for (int c = 0; c < clients; c++) {
            Thread t = new Thread(() -> {
                int i;
                try (SseSocketClient socket = socketClient ? new SseSocketClient(uri) : null) {
                    while ((i = next.getAndIncrement()) < prompts.size()) {
                        try {
                            results.add(socket != null ? socket.post(prompts.get(i), maxTokens, i)
                                : once(http, uri, prompts.get(i), maxTokens, i));
                        } catch (IOException | InterruptedException e) {
                            throw new IllegalStateException("request " + i + " failed: " + e, e);
                        }
                    }
                }
            }, "serve-bench-client-" + c);
            threads.add(t);
            t.start();
        }
        for (Thread t : threads) {
            t.join();
        }
        return results;
    }

    private static final String[] STEP_CYCLE_METRICS = {"troupe_serve_steps_total",
        "troupe_serve_step_forward_seconds_total", "troupe_serve_step_schedule_seconds_total",
        "troupe_serve_event_delivery_seconds_total", "troupe_serve_generated_tokens_total",
        "troupe_serve_step_sample_seconds_total", "troupe_serve_prefilled_beside_total",
        "troupe_serve_prefill_forward_seconds_total"};

    /**
     * The server's step counters: {steps, forward s, schedule s, delivery s, tokens, sample s, requests
     * prefilled beside the steps, prefill forward s} (0 where absent).
     */
    private static double[] stepCycle(HttpClient http, URI metrics) throws IOException, InterruptedException {
        String text = http.send(HttpRequest.newBuilder(metrics).timeout(Duration.ofSeconds(30)).GET().build(),
            HttpResponse.BodyHandlers.ofString()).body();
        double[] out = new double[STEP_CYCLE_METRICS.length];
        for (String line : text.split("\n")) {
            for (int i = 0; i < out.length; i++) {
                if (line.startsWith(STEP_CYCLE_METRICS[i] + " ")) {
                    out[i] = Double.parseDouble(line.substring(STEP_CYCLE_METRICS[i].length() + 1).trim());
                }
            }
        }
        return out;
    }

    private static final Pattern COMPLETION_TOKENS = Pattern.compile("\"completion_tokens\":(\\d+)");

    static boolean isStreaming() {
        return stream;
    }

    /** A request's JSON body (sampled at temperature 0.8 with the request's own seed). */
    static String body(String prompt, int maxTokens, int seed) {
        return "{\"prompt\":" + quote(prompt) + ",\"max_tokens\":" + maxTokens + ",\"temperature\":0.8,\"seed\":"
            + seed + ",\"stream\":" + stream + "}";
    }

    /** One streaming request: {completion tokens, ttft ms, tpot ms}. */
    private static double[] once(HttpClient http, URI uri, String prompt, int maxTokens,
        int seed) throws IOException, InterruptedException {
        String body = body(prompt, maxTokens, seed);
        long start = System.nanoTime();
        HttpResponse<java.util.stream.Stream<String>> r = http.send(HttpRequest.newBuilder(uri)
            .timeout(Duration.ofMinutes(10)).POST(HttpRequest.BodyPublishers.ofString(body)).build(),
            HttpResponse.BodyHandlers.ofLines());
        if (r.statusCode() != 200) {
            throw new IOException("status " + r.statusCode());
        }
        if (!stream) {
            String all = String.join("\n", r.body().toList());
            return wholeResponse(all, start);
        }
        StreamTimer timer = new StreamTimer();
        r.body().forEach(line -> timer.line(line, System.nanoTime()));
        return timer.result(start);
    }

    /** A whole (not streamed) response: {completion tokens, request latency ms, 0}. */
    static double[] wholeResponse(String all, long start) throws IOException {
        Matcher m = COMPLETION_TOKENS.matcher(all);
        if (!m.find()) {
            throw new IOException("response without usage: " + all);
        }
        double ms = (System.nanoTime() - start) / 1e6;
        return new double[] {Integer.parseInt(m.group(1)), ms, 0};
    }

    /** Times a streamed response from its lines: the first and last token events, the tokens from the usage. */
    static final class StreamTimer {
        private long first;
        private long last;
        private int tokens = -1;

        void line(String line, long now) {
            if (!line.startsWith("data: ")) {
                return;
            }
            if (line.contains("\"usage\"")) {        // the final event (finish reason, usage)
                Matcher m = COMPLETION_TOKENS.matcher(line);
                if (m.find()) {
                    tokens = Integer.parseInt(m.group(1));
                }
                return;
            }
            if (line.equals("data: [DONE]")) {
                return;
            }
            if (first == 0) {
                first = now;
            }
            last = now;
        }

        /** {completion tokens, ttft ms, tpot ms} of a request sent at {@code start}. */
        double[] result(long start) throws IOException {
            if (tokens < 0) {
                throw new IOException("stream ended without usage");
            }
            double ttftMs = (first - start) / 1e6;
            double tpotMs = tokens > 1 ? (last - first) / 1e6 / (tokens - 1) : 0;
            return new double[] {tokens, ttftMs, tpotMs};
        }
    }

    private static double pct(double[] v, double p) {
        if (v.length == 0) {
            return Double.NaN;
        }
        double[] s = v.clone();
        Arrays.sort(s);
        return s[(int) Math.min(s.length - 1, Math.ceil(p * s.length) - 1)];
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

    private static String quote(String s) {
        StringBuilder sb = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') {
                sb.append('\\').append(c);
            } else if (c < 0x20 || c > 0x7e) {
                sb.append(String.format("\\u%04x", (int) c));
            } else {
                sb.append(c);
            }
        }
        return sb.append('"').toString();
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
