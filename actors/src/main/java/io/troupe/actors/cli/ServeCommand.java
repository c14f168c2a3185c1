package io.troupe.actors.cli;

import io.troupe.actors.serve.InferenceServer;
import io.troupe.actors.serve.ServeSettings;
import io.troupe.models.checkpoint.CheckpointException;
import io.troupe.models.checkpoint.Checkpoints;
import io.troupe.models.infer.InferenceWeights;
import io.troupe.models.infer.PagedKvCache;
import io.troupe.models.infer.Quantization;
import io.troupe.models.parallel.Layout;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.function.Consumer;

/**
 * {@code troupe serve --checkpoint DIR [--port 8080] [--host H] [--quantize none|int8] [--max-batch N]
 * [--kv-cache-mib M] [--token-budget T] [--max-queue Q] [--layout 1xN] [--drain-timeout S]}: serves a
 * checkpoint of any training layout over HTTP until stopped (SIGTERM / Ctrl-C). A stop drains first
 * ({@link InferenceServer#drain}): new work gets 503 while the requests held run to their end, for up to
 * the drain timeout; the exit code then says whether every request held was answered (0) or some were cut
 * ({@link #REQUESTS_CUT}). A server that ends with no stop asked for exits {@link #ENDED}, saying so on stderr.
 * Defaults from {@code troupe.serve}.
 */
final class ServeCommand {
    private ServeCommand() {
    }

    /** The exit code of a stop that ended requests unfinished (the drain timed out, or --drain-timeout 0). */
    static final int REQUESTS_CUT = 5;
    /** The exit code of a server that ended by itself, with no stop asked for (its actor system terminated). */
    static final int ENDED = 6;
    /** How long closing the server may take after the drain: unbinding, the actor system, the pipeline, ms. */
    private static final long CLOSE_MS = 20_000;

    static final String USAGE = """
        usage: troupe serve --checkpoint DIR [--port 8080] [--host 127.0.0.1] [--quantize none|int8]
                            [--max-batch N] [--kv-cache-mib M] [--token-budget T] [--max-queue Q] [--layout 1xN]
                            [--isolate-step-core true|false] [--prefill-thread true|false] [--prefill-ahead N]
                            [--kv-dtype f32|bf16] [--prefix-cache true|false] [--drain-timeout SECONDS]
                            [--stage-hosts HOST:PORT,...] [--device cpu|cuda] [--config FILE]
        Serves POST /v1/completions (OpenAI style, "stream": true for server-sent events), GET /v1/models,
        GET /health, GET /health/live and GET /metrics (Prometheus) with continuous batching over a paged
        KV cache. Defaults and the other settings: troupe.serve in cluster-config/reference.conf.
        --max-batch is at most the KV cache's
        blocks (each running sequence holds one at least), and the KV cache (--kv-cache-mib, allocated at start)
        must fit the heap (-Xmx) beside the weights. On SIGTERM or Ctrl-C it drains:
        503 to new requests and to /health while the requests it holds finish, for up to --drain-timeout
        seconds (default 25; 0 ends them at once), then exits: 0 when every request it held was answered in full,
        5 when some were ended unfinished (finish reason cancelled). A server that ends by itself (its actor
        system terminated with no stop asked for) says so on stderr and exits 6.
        --stage-hosts: stages 1..N-1 of --layout 1xN run on these stage hosts ('troupe serve-stage', one per
        stage, in order, each with its own copy of the checkpoint; hosts named after those are spares); a lost
        host (silent for loss-timeout, or its stage inside one step past step-timeout) pauses serving, its
        running requests are requeued and recomputed once its stage is back, on a spare that answers or on
        the host itself (troupe.serve.stage-link). The stage link
        runs over TLS with mutual authentication when troupe.cluster.tls is on (on the hosts too).
        --device: the whole model on one device through its kernels (cuda: a GPU; cpu: the same code on the
        CPU's reference loops), float32 weights and KV cache, no prefill thread; without it the CPU serving path
        above (--quantize, --kv-dtype, --layout apply there).
        --config: a HOCON file over reference.conf (troupe.serve, troupe.serve.stage-link, troupe.cluster.tls,
        troupe.transport).""";

    static int run(String[] args, PrintStream out, PrintStream err) {
        return run(args, out, err, server -> { });
    }

    /** As {@link #run(String[], PrintStream, PrintStream)}, handing {@code started} the server once it is up. */
    static int run(String[] args, PrintStream out, PrintStream err, Consumer<InferenceServer> started) {
        Options o = Options.parse(args, Set.of("checkpoint", "port", "host", "quantize", "max-batch", "kv-cache-mib",
            "token-budget", "max-queue", "layout", "isolate-step-core", "prefill-thread", "prefill-ahead",
            "kv-dtype", "prefix-cache", "drain-timeout", "stage-hosts", "device", "config"), Set.of());
        if (!o.has("checkpoint")) {
            throw new UsageException("serve needs --checkpoint DIR");
        }
        int stages = o.has("layout") ? pipelineStages(o.get("layout")) : 1;
        com.typesafe.config.Config cfg = NodeCommand.withConfigFile(o);
        ServeSettings s = settings(o, cfg);
        requireListenable(s.host(), s.port());
        io.troupe.actors.serve.StageLinks links;
        try {
            links = io.troupe.actors.serve.StageLinks.from(cfg, o.has("stage-hosts")
                ? java.util.Arrays.stream(o.get("stage-hosts").split(",")).map(String::trim).toList()
                : List.of());
        } catch (IllegalArgumentException e) {
            throw new UsageException("--stage-hosts: " + e.getMessage());
        }
        if (links.remote() && links.hosts().size() < stages - 1) {
            throw new UsageException("--stage-hosts names " + links.hosts().size() + " host(s); --layout 1x" + stages
                + " needs " + (stages - 1) + " (one per stage after the first; more are spares): --stage-hosts="
                + o.get("stage-hosts"));
        }
        if (o.has("device") && (stages > 1 || links.remote())) {
            throw new UsageException("--device serves the whole model on one stage: drop --layout 1x" + stages
                + (links.remote() ? " and --stage-hosts" : ""));
        }
        try {
            Path dir = Checkpoints.resolve(CheckpointCommand.existingDirectory("--checkpoint", o.get("checkpoint")));
            if (o.has("device")) {
                return serveOnDevice(o.get("device"), dir, s, out, err);
            }
            // with stage hosts, this server holds stage 0 only: the embeddings and the first blocks
            InferenceWeights w = links.remote()
                ? InferenceWeights.load(dir, s.quantization(), 0, io.troupe.models.parallel.StagePartition.balanced(
                    Checkpoints.readManifest(dir).model(), stages).endBlock(0))
                : InferenceWeights.load(dir, s.quantization());
            InferenceServer server;
            try {
                server = InferenceServer.start(w, s, stages, links);
            } catch (IllegalArgumentException | IllegalStateException e) {
                throw new UsageException(e.getMessage());
            }
            int blocks = PagedKvCache.blocksForBudget(w.config(), s.kvBlockTokens(), s.kvCacheMib(), s.kvPrecision());
            out.printf(Locale.ROOT, "troupe serve: %s (model %s, context %d) on http://%s:%d, %s weights %.2f MiB, "
                    + "KV cache %d %s blocks of %d tokens, max batch %d, %d pipeline stage(s)%n", dir,
                        w.config().name(), w.config().seqLen(), s.host(),
                server.port(), s.quantization() == Quantization.NONE ? "f32" : s.quantization().name().toLowerCase(
                    Locale.ROOT), w.weightBytes() / 1048576.0, blocks,
                s.kvPrecision(), s.kvBlockTokens(), s.maxBatch(), stages);
            if (links.remote()) {
                List<String> hosts = links.hosts();
                out.printf(Locale.ROOT, "troupe serve: stages 1..%d on stage hosts %s%s%n", stages - 1,
                    String.join(", ", hosts.subList(0, stages - 1)), hosts.size() < stages ? ""
                        : "; spares " + String.join(", ", hosts.subList(stages - 1, hosts.size())));
            }
            out.flush();
            started.accept(server);
            return untilStopped(server, s, out, err);
        } catch (CheckpointException e) {
            err.println("troupe serve: " + e.getMessage());
            return 4;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return 0;
        }
    }

    /**
     * Refuses a host that does not resolve and a host and port this process cannot listen on (another
     * process's port, an address of another machine) before the checkpoint loads, in one line instead of the
     * HTTP server's bind failure. Port 0 (any free port) is only resolved.
     */
    static void requireListenable(String host, int port) {
        java.net.InetAddress address;
        try {
            address = java.net.InetAddress.getByName(host);
        } catch (java.net.UnknownHostException e) {
            throw new UsageException("--host: unknown host '" + host + "'");
        }
        if (port == 0) {
            return;
        }
        try (java.net.ServerSocket socket = new java.net.ServerSocket()) {
            socket.setReuseAddress(true);
            socket.bind(new java.net.InetSocketAddress(address, port));
        } catch (java.io.IOException e) {
            throw new UsageException("cannot listen on " + host + ":" + port + " (--host, --port): " + e.getMessage());
        }
    }

    /**
     * Drains {@code server} for up to {@code timeoutMs} (none: 0) on a stop asked for by {@code reason}, saying
     * how it went; false when requests in flight were ended unfinished.
     */
    private static boolean drain(InferenceServer server, long timeoutMs, String reason, PrintStream out) {
        long held = server.requestsInFlight();
        if (timeoutMs == 0) {
            out.printf(Locale.ROOT, "troupe serve: %s: stopping; %d request(s) in flight end now (drain-timeout 0)%n",
                reason, held);
            return held == 0;
        }
        out.printf(Locale.ROOT, "troupe serve: %s: draining: 503 to new requests; %d request(s) in flight, up to %d"
            + " ms%n", reason, held, timeoutMs);
        out.flush();
        long t0 = System.nanoTime();
        boolean all = server.drain(java.time.Duration.ofMillis(timeoutMs)).join();
        long ms = (System.nanoTime() - t0) / 1_000_000;
        if (all) {
            out.printf(Locale.ROOT, "troupe serve: drained in %d ms: every request held was answered%n", ms);
        } else {
            out.printf(Locale.ROOT, "troupe serve: drain timed out after %d ms; %d request(s) still in flight end"
                + " now (finish reason cancelled)%n", ms, server.requestsInFlight());
        }
        return all;
    }

    /** The pipeline stages of a serving layout {@code 1xN} (or {@code 1xNx1}); dp or tp > 1 is refused. */
    static int pipelineStages(String layout) {
        Layout l;
        try {
            l = Layout.parse(layout, 1);
        } catch (IllegalArgumentException e) {
            throw new UsageException("--layout: " + e.getMessage());
        }
        if (l.dp() != 1) {
            throw new UsageException("--layout: serving is not data-parallel (run one server per replica): dp="
                + l.dp() + " in --layout=" + layout);
        }
        if (l.tp() != 1) {
            throw new UsageException("--layout: serving has no tensor parallelism: tp=" + l.tp() + " in --layout="
                + layout);
        }
        return l.pp();
    }

    /** {@code --device}: the whole model on one device through DeviceKvCachedGpt, until a stop, as {@link #run}. */
    private static int serveOnDevice(String device, Path dir, ServeSettings s, PrintStream out, PrintStream err)
        throws InterruptedException {
        io.troupe.runtime.device.DeviceKind kind;
        try {
            kind = io.troupe.runtime.device.DeviceKind.parse(device);
        } catch (IllegalArgumentException e) {
            throw new UsageException("--device: " + e.getMessage());
        }
        io.troupe.models.gpt.GptConfig model = Checkpoints.readManifest(dir).model();
        java.util.Map<String, float[]> params = InferenceWeights.loadParameters(dir);
        io.troupe.runtime.device.Device dev;
        try {
            dev = io.troupe.runtime.device.Devices.open(kind, Math.max(1, Runtime.getRuntime().availableProcessors()));
        } catch (io.troupe.runtime.device.DeviceUnavailableException e) {
            err.println("troupe serve: " + e.getMessage());
            return 3;
        }
        InferenceServer server;
        try {
            server = InferenceServer.startOnDevice(model, params, dev, s);
        } catch (IllegalArgumentException | IllegalStateException e) {
            throw new UsageException(e.getMessage());
        }
        int blocks = PagedKvCache.blocksForBudget(model, s.kvBlockTokens(), s.kvCacheMib());
        out.printf(Locale.ROOT, "troupe serve: %s (model %s, context %d) on http://%s:%d, on %s, f32 weights, KV"
            + " cache %d f32 blocks of %d tokens, max batch %d, 1 stage%n", dir, model.name(), model.seqLen(), s.host(),
            server.port(), dev.name(), blocks, s.kvBlockTokens(), s.maxBatch());
        out.flush();
        return untilStopped(server, s, out, err);   // the server owns the device and closes it
    }

    /**
     * Serves until a stop (SIGTERM, SIGINT, or a hook-driven one such as SIGHUP, which waits for the drain and
     * the close) or until the server ends by itself; drains, closes and says which.
     *
     * @return 0 after a complete drain, {@link #REQUESTS_CUT} when requests were cut, {@link #ENDED} when the
     *     server ended with no stop asked for
     */
    private static int untilStopped(InferenceServer server, ServeSettings s, PrintStream out, PrintStream err)
        throws InterruptedException {
        StopSignal stop = StopSignal.install("troupe-serve", s.drainTimeoutMs() + CLOSE_MS);
        if (!stop.awaitRequest(server.whenTerminated())) {
            long held = server.requestsInFlight();
            server.close();
            err.printf(Locale.ROOT, "troupe serve: the server ended by itself: its actor system terminated with"
                + " no stop asked for; %d request(s) in flight were ended%n", held);
            err.flush();
            stop.stopped();
            return ENDED;
        }
        boolean all = drain(server, s.drainTimeoutMs(), stop.reason(), out);
        server.close();
        out.println("troupe serve: stopped");
        out.flush();
        stop.stopped();
        return all ? 0 : REQUESTS_CUT;
    }

    static ServeSettings settings(Options o, com.typesafe.config.Config cfg) {
        ServeSettings s;
        try {
            s = ServeSettings.from(cfg);
            if (o.has("quantize")) {
                s = s.withQuantization(EvalCommand.quantization(o.get("quantize")));
            }
            if (o.has("host")) {
                s = s.withHost(o.get("host"));
            }
            if (o.has("port")) {
                s = s.withPort(integer(o, "port"));
            }
            if (o.has("max-batch")) {
                s = s.withMaxBatch(EvalCommand.positive(o, "max-batch", 1));
            }
            if (o.has("kv-cache-mib")) {
                s = s.withKvCacheMib(EvalCommand.positive(o, "kv-cache-mib", 1));
            }
            if (o.has("isolate-step-core")) {
                s = s.withIsolateStepCore(bool(o, "isolate-step-core"));
            }
            if (o.has("kv-dtype")) {
                s = s.withKvPrecision(EvalCommand.kvPrecision(o.get("kv-dtype")));
            }
            if (o.has("prefill-thread")) {
                s = s.withPrefillThread(bool(o, "prefill-thread"));
            }
            if (o.has("prefix-cache")) {
                s = s.withPrefixCache(bool(o, "prefix-cache"));
            }
            if (o.has("prefill-ahead")) {
                s = s.withPrefillAhead(integer(o, "prefill-ahead"));
            }
            if (o.has("max-queue")) {
                s = s.withMaxQueue(integer(o, "max-queue"));
            }
            if (o.has("drain-timeout")) {
                int sec = integer(o, "drain-timeout");
                if (sec < 0) {
                    throw new UsageException("--drain-timeout must be >= 0 seconds: --drain-timeout="
                        + o.get("drain-timeout"));
                }
                s = s.withDrainTimeoutMs(sec * 1000L);
            }
            if (o.has("token-budget")) {
                int t = EvalCommand.positive(o, "token-budget", 1);
                s = s.withTokenBudget(t);
            }
        } catch (IllegalArgumentException e) {
            throw new UsageException(e.getMessage());
        }
        return s;
    }

    private static boolean bool(Options o, String name) {
        String v = o.get(name).trim();
        if (!v.equals("true") && !v.equals("false")) {
            throw new UsageException("--" + name + " must be true or false: --" + name + "=" + o.get(name));
        }
        return Boolean.parseBoolean(v);
    }

    private static int integer(Options o, String name) {
        try {
            return Integer.parseInt(o.get(name).trim());
        } catch (NumberFormatException e) {
            throw new UsageException("--" + name + " must be an integer: --" + name + "=" + o.get(name));
        }
    }
}
