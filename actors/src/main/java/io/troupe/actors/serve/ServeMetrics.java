package io.troupe.actors.serve;

import java.util.Locale;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * What {@code GET /metrics} shows, in the Prometheus text format: gauges the scheduler actor sets
 * after every step, counters, and latency histograms. Written by the actor, read by HTTP threads.
 * Not final: a test makes its calls fail, as a failure in the step loop outside the forward.
 */
class ServeMetrics {
    /** The Prometheus text format's content type. */
    static final org.apache.pekko.http.javadsl.model.ContentType.NonBinary CONTENT_TYPE =
        (org.apache.pekko.http.javadsl.model.ContentType.NonBinary) org.apache.pekko.http.javadsl.model.ContentTypes
            .parse("text/plain; version=0.0.4; charset=utf-8");
    /** The statuses of the HTTP layer's refusals shown even at 0; another shows once it was counted. */
    private static final int[] HTTP_REFUSALS = {400, 414, 431, 501, 505};
    private volatile int queueDepth;
    private volatile int runningBatch;
    private volatile int kvBlocksUsed;
    private volatile int kvBlocksCached;
    private final AtomicLong prefixReusedTokens = new AtomicLong();
    private final AtomicLong prefixEvictions = new AtomicLong();
    private volatile int stepsInFlight;
    private final AtomicLong overlappedSteps = new AtomicLong();
    private final int kvBlocksTotal;
    private final AtomicLong tokens = new AtomicLong();
    private final AtomicLong steps = new AtomicLong();
    private final AtomicLong requests = new AtomicLong();
    private final AtomicLong rejected = new AtomicLong();
    private final AtomicLong stepForwardNs = new AtomicLong();
    private final AtomicLong stepScheduleNs = new AtomicLong();
    private final AtomicLong eventDeliveryNs = new AtomicLong();
    private final AtomicLong stepSampleNs = new AtomicLong();
    private final AtomicLong badRequests = new AtomicLong();
    private final AtomicLong preemptions = new AtomicLong();
    private final AtomicLong prefilledBeside = new AtomicLong();
    private final AtomicLong prefillForwardNs = new AtomicLong();
    private final AtomicLong refusedDraining = new AtomicLong();
    /** Requests the HTTP layer refused before routing, by status: index status - 400, for 4xx and 5xx. */
    private final AtomicLongArray refusedByHttp = new AtomicLongArray(200);
    private final AtomicLong pipelinePauses = new AtomicLong();
    private volatile java.util.function.Supplier<String> pipelineDown = () -> null;
    private volatile java.util.function.LongSupplier stageMoves = () -> 0;
    private volatile java.util.function.LongSupplier stuckStages = () -> 0;
    /** The pipeline data plane's drops by reason; null on one stage (no data plane). */
    private volatile java.util.function.ToLongFunction<io.troupe.runtime.transport.DropReason> framesDropped;
    private volatile java.util.function.Supplier<String> stepLoopStopped = () -> null;
    // the HTTP side's state, read where it is kept (CompletionRoutes)
    private volatile java.util.function.LongSupplier requestsInFlight = () -> 0;
    private volatile java.util.function.BooleanSupplier draining = () -> false;
    private final AtomicLong[] finished = new AtomicLong[io.troupe.models.infer.FinishReason.values().length];
    final LatencyHistogram ttft = new LatencyHistogram("troupe_serve_time_to_first_token_seconds",
        "Time from a request's arrival to its first generated token.");
    final LatencyHistogram tpot = new LatencyHistogram("troupe_serve_time_per_output_token_seconds",
        "Time between consecutive generated tokens of one request.");
    // tokens/s over a sliding window: the count and time at the window's start
    private volatile long windowStartNs = System.nanoTime();
    private volatile long windowStartTokens;
    private volatile double tokensPerS;

    ServeMetrics(int kvBlocksTotal) {
        this.kvBlocksTotal = kvBlocksTotal;
        for (int i = 0; i < finished.length; i++) {
            finished[i] = new AtomicLong();
        }
    }

    int kvBlocksTotal() {
        return kvBlocksTotal;
    }

    void setGauges(int queueDepth, int runningBatch, io.troupe.models.infer.PagedKvCache cache, long preemptionsTotal) {
        this.queueDepth = queueDepth;
        this.runningBatch = runningBatch;
        this.kvBlocksUsed = cache.usedBlocks();
        this.kvBlocksCached = cache.cachedBlocks();
        this.prefixReusedTokens.set(cache.reusedTokens());
        this.prefixEvictions.set(cache.evictions());
        this.preemptions.set(preemptionsTotal);
    }

    /** Counts a step and its generated tokens; refreshes tokens/s once a second (actor thread). */
    void onStep(int generated, long nowNs) {
        steps.incrementAndGet();
        long total = tokens.addAndGet(generated);
        long dt = nowNs - windowStartNs;
        if (dt >= 1_000_000_000L) {
            tokensPerS = (total - windowStartTokens) * 1e9 / dt;
            windowStartNs = nowNs;
            windowStartTokens = total;
        }
    }

    /**
     * Tokens/s of the last window the steps closed; once no step has closed one for two seconds (the
     * server idles, or steps stall), the rate since that window began, falling towards 0.
     */
    double tokensPerSecond(long nowNs) {
        long since = nowNs - windowStartNs;
        return since < 2_000_000_000L ? tokensPerS : (tokens.get() - windowStartTokens) * 1e9 / since;
    }

    /** A step was started with {@code inFlight} steps (itself included) in flight (actor thread). */
    void onStepStarted(int inFlight) {
        stepsInFlight = inFlight;
        if (inFlight > 1) {
            overlappedSteps.incrementAndGet();
        }
    }

    /** A step ended (done or failed), leaving {@code inFlight} in flight (actor thread). */
    void onStepEnded(int inFlight) {
        stepsInFlight = inFlight;
    }

    /**
     * A decode-loop step: its forward took {@code forwardNs}; planning, sampling and hand-offs
     * {@code scheduleNs}, of which sampling, appending and retiring ({@code complete}) {@code sampleNs}.
     */
    void onStepCycle(long forwardNs, long scheduleNs, long sampleNs) {
        stepForwardNs.addAndGet(forwardNs);
        stepScheduleNs.addAndGet(scheduleNs);
        stepSampleNs.addAndGet(sampleNs);
    }

    /** A step's listener calls (the clients' streaming work) took {@code ns} on the events thread. */
    void onEventsDelivered(long ns) {
        eventDeliveryNs.addAndGet(ns);
    }

    /** The prefill thread prefilled {@code requests} requests in one forward of {@code ns}. */
    void onPrefilledBeside(int requests, long ns) {
        prefilledBeside.addAndGet(requests);
        prefillForwardNs.addAndGet(ns);
    }

    void onAccepted() {
        requests.incrementAndGet();
    }

    void onRejected() {
        rejected.incrementAndGet();
    }

    void onBadRequest() {
        badRequests.incrementAndGet();
    }

    /** The scheduler paused for a lost pipeline stage (or a failed step it recovers from). */
    void onPipelineDown() {
        pipelinePauses.incrementAndGet();
    }

    /** Why the pipeline is down now, or null (read when metrics are written). */
    void readPipeline(java.util.function.Supplier<String> down) {
        this.pipelineDown = down;
    }

    /** Reads why the step loop stopped serving for good (null while it serves). */
    void readStepLoop(java.util.function.Supplier<String> stopped) {
        this.stepLoopStopped = stopped;
    }

    /** Why the server's step loop stopped serving for good, or null while it serves. */
    String stepLoopStopped() {
        return stepLoopStopped.get();
    }

    /** How many times a lost stage host's stage moved to a spare (read when metrics are written). */
    void readStageMoves(java.util.function.LongSupplier moves) {
        this.stageMoves = moves;
    }

    /**
     * How many times the pipeline was down for a stage stuck inside one step for the step timeout (read when
     * metrics are written).
     */
    void readStuckStages(java.util.function.LongSupplier stuck) {
        this.stuckStages = stuck;
    }

    /** Where the pipeline data plane's dropped frames are counted, by reason (a pipelined server only). */
    void readFramesDropped(java.util.function.ToLongFunction<io.troupe.runtime.transport.DropReason> dropped) {
        this.framesDropped = dropped;
    }

    /**
     * The HTTP layer refused a request before routing, with {@code status} (a URI or header section too large, a
     * malformed request, an unknown method or HTTP version); on a connection's thread.
     */
    void onRefusedByHttp(int status) {
        if (status >= 400 && status < 600) {
            refusedByHttp.incrementAndGet(status - 400);
        }
    }

    /** A completion refused with 503 because the server drains. */
    void onRefusedDraining() {
        refusedDraining.incrementAndGet();
    }

    /**
     * Where the HTTP side's state is read: the completions it accepted and has not answered in full,
     * and whether it drains.
     */
    void readHttpSide(java.util.function.LongSupplier inFlight, java.util.function.BooleanSupplier drains) {
        this.requestsInFlight = inFlight;
        this.draining = drains;
    }

    void onFinished(io.troupe.models.infer.FinishReason r) {
        finished[r.ordinal()].incrementAndGet();
    }

    int queueDepth() {
        return queueDepth;
    }

    String render() {
        StringBuilder sb = new StringBuilder(4096);
        gauge(sb, "troupe_serve_queue_depth", "Requests waiting for admission.", queueDepth);
        gauge(sb, "troupe_serve_requests_in_flight", "Completions accepted and not yet answered in full.",
            requestsInFlight.getAsLong());
        gauge(sb, "troupe_serve_draining", "1 while the server drains: it finishes what it holds, refuses new work.",
            draining.getAsBoolean() ? 1 : 0);
        gauge(sb, "troupe_serve_running_batch_size", "Sequences in the running batch.", runningBatch);
        gauge(sb, "troupe_serve_kv_cache_blocks_used", "KV-cache blocks held by sequences.", kvBlocksUsed);
        gauge(sb, "troupe_serve_kv_cache_blocks_total", "KV-cache blocks in the pool.", kvBlocksTotal);
        gauge(sb, "troupe_serve_kv_cache_blocks_cached", "KV-cache blocks that hold a cached prefix and no sequence"
            + " (free, reusable until evicted).", kvBlocksCached);
        counter(sb, "troupe_serve_prefix_cache_reused_tokens_total", "Prompt positions taken from the prefix cache"
            + " instead of computed.", prefixReusedTokens.get());
        counter(sb, "troupe_serve_prefix_cache_evictions_total", "Cached prefix blocks evicted for an allocation.",
            prefixEvictions.get());
        gauge(sb, "troupe_serve_steps_in_flight", "Steps (micro-batches) started and not yet done or failed.",
            stepsInFlight);
        gauge(sb, "troupe_serve_tokens_per_second", "Generated tokens per second over the last second or more.",
            tokensPerSecond(System.nanoTime()));
        counter(sb, "troupe_serve_generated_tokens_total", "Tokens generated.", tokens.get());
        counter(sb, "troupe_serve_steps_total", "Decoding steps run.", steps.get());
        gauge(sb, "troupe_serve_up", "1 while the server runs steps, 0 once its step loop stopped for good.",
            stepLoopStopped.get() == null ? 1 : 0);
        gauge(sb, "troupe_serve_pipeline_up", "1 while every pipeline stage can run steps, 0 while one is lost.",
            pipelineDown.get() == null ? 1 : 0);
        counter(sb, "troupe_serve_pipeline_pauses_total",
            "Times serving paused to recover the pipeline (running sequences requeued and recomputed).",
            pipelinePauses.get());
        counter(sb, "troupe_serve_pipeline_stage_moves_total",
            "Times a lost stage host's pipeline stage moved to a spare stage host.", stageMoves.getAsLong());
        counter(sb, "troupe_serve_pipeline_stuck_stages_total",
            "Times a pipeline stage stayed inside one step for the step timeout (its host counted as lost).",
            stuckStages.getAsLong());
        sb.append("# HELP troupe_serve_frames_dropped_total Pipeline data-plane frames (or fragments) this server")
            .append(" dropped, by reason (none on one stage).\n");
        sb.append("# TYPE troupe_serve_frames_dropped_total counter\n");
        java.util.function.ToLongFunction<io.troupe.runtime.transport.DropReason> dropped = framesDropped;
        if (dropped != null) {
            for (io.troupe.runtime.transport.DropReason r : io.troupe.runtime.transport.DropReason.values()) {
                sb.append("troupe_serve_frames_dropped_total{reason=\"").append(r.name()).append("\"} ")
                    .append(dropped.applyAsLong(r)).append('\n');
            }
        }
        counter(sb, "troupe_serve_overlapped_steps_total",
            "Steps started while another was in flight (pipeline stages working at once).", overlappedSteps.get());
        counter(sb, "troupe_serve_step_forward_seconds_total", "Time in the model's forward (decode loop).",
            stepForwardNs.get() / 1e9);
        counter(sb, "troupe_serve_step_schedule_seconds_total",
            "Time planning, sampling and handing off between forwards (decode loop).", stepScheduleNs.get() / 1e9);
        counter(sb, "troupe_serve_step_sample_seconds_total",
            "Of the schedule time, sampling, appending and retiring (decode loop).", stepSampleNs.get() / 1e9);
        counter(sb, "troupe_serve_event_delivery_seconds_total",
            "Time delivering steps' tokens to the clients' streams (events thread).", eventDeliveryNs.get() / 1e9);
        counter(sb, "troupe_serve_prefilled_beside_total",
            "Requests prefilled on the prefill thread, beside the decoding steps.", prefilledBeside.get());
        counter(sb, "troupe_serve_prefill_forward_seconds_total", "Time in prefill forwards (prefill thread).",
            prefillForwardNs.get() / 1e9);
        counter(sb, "troupe_serve_requests_total", "Requests admitted to the queue.", requests.get());
        counter(sb, "troupe_serve_rejected_total", "Requests refused with 429 (queue full).", rejected.get());
        counter(sb, "troupe_serve_bad_requests_total", "Requests refused with 400, or 404 for a model not served.",
            badRequests.get());
        counter(sb, "troupe_serve_refused_draining_total", "Requests refused with 503 while draining.",
            refusedDraining.get());
        sb.append("# HELP troupe_serve_http_refused_total Requests the HTTP layer refused before routing (URI or")
            .append(" headers too large, malformed, unknown method or HTTP version), by status.\n");
        sb.append("# TYPE troupe_serve_http_refused_total counter\n");
        for (int i = 0, k = 0; i < refusedByHttp.length(); i++) {
            long n = refusedByHttp.get(i);
            boolean always = k < HTTP_REFUSALS.length && HTTP_REFUSALS[k] == 400 + i;
            k += always ? 1 : 0;
            if (always || n > 0) {
                sb.append("troupe_serve_http_refused_total{status=\"").append(400 + i).append("\"} ").append(n)
                    .append('\n');
            }
        }
        counter(sb, "troupe_serve_preemptions_total", "Sequences preempted for KV blocks (recomputed later).",
            preemptions.get());
        sb.append("# HELP troupe_serve_finished_total Requests finished, by finish reason.\n");
        sb.append("# TYPE troupe_serve_finished_total counter\n");
        for (io.troupe.models.infer.FinishReason r : io.troupe.models.infer.FinishReason.values()) {
            sb.append("troupe_serve_finished_total{reason=\"").append(r.wireName()).append("\"} ")
                .append(finished[r.ordinal()].get()).append('\n');
        }
        ttft.render(sb);
        tpot.render(sb);
        return sb.toString();
    }

    private static void gauge(StringBuilder sb, String name, String help, double v) {
        sb.append("# HELP ").append(name).append(' ').append(help).append('\n');
        sb.append("# TYPE ").append(name).append(" gauge\n");
        sb.append(name).append(' ').append(String.format(Locale.ROOT, v == Math.rint(v) ? "%.0f" : "%.3f",
            v)).append('\n');
    }

    private static void counter(StringBuilder sb, String name, String help, double v) {
        sb.append("# HELP ").append(name).append(' ').append(help).append('\n');
        sb.append("# TYPE ").append(name).append(" counter\n");
        sb.append(name).append(' ').append(String.format(Locale.ROOT, "%.6f", v)).append('\n');
    }

    private static void counter(StringBuilder sb, String name, String help, long v) {
        sb.append("# HELP ").append(name).append(' ').append(help).append('\n');
        sb.append("# TYPE ").append(name).append(" counter\n");
        sb.append(name).append(' ').append(v).append('\n');
    }
}
