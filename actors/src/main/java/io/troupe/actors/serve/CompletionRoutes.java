package io.troupe.actors.serve;

import static io.troupe.actors.serve.ErrorResponses.error;
import static io.troupe.actors.serve.ErrorResponses.refusal;

import io.troupe.models.infer.Generation;
import io.troupe.models.infer.GenerationListener;
import io.troupe.models.infer.SamplingParams;
import java.nio.charset.Charset;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.pekko.NotUsed;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.http.javadsl.model.ContentTypes;
import org.apache.pekko.http.javadsl.model.HttpCharset;
import org.apache.pekko.http.javadsl.model.HttpEntities;
import org.apache.pekko.http.javadsl.model.HttpResponse;
import org.apache.pekko.http.javadsl.model.MediaTypes;
import org.apache.pekko.http.javadsl.model.StatusCodes;
import org.apache.pekko.http.javadsl.server.AllDirectives;
import org.apache.pekko.http.javadsl.server.PathMatchers;
import org.apache.pekko.http.javadsl.server.Route;
import org.apache.pekko.http.javadsl.unmarshalling.Unmarshaller;
import org.apache.pekko.stream.javadsl.Source;
import org.apache.pekko.util.ByteString;

/**
 * The HTTP API: {@code POST /v1/completions} (OpenAI style, JSON or server-sent events),
 * {@code GET /v1/models} and {@code /v1/models/<id>} (the one model served), {@code GET /health},
 * {@code GET /metrics} (Prometheus text). A bad body is answered 400 with {@code error.param} naming
 * the field; one that names another model than the one served 404 ({@code model_not_found}, as for
 * {@code /v1/models/<id>}); a full queue 429 with {@code Retry-After}. A streaming client that disconnects
 * cancels its request, which frees its KV blocks at the next step; so does any client that closes
 * its connection (a reset, or a plain FIN) while its request runs ({@link ConnectionScope}).
 *
 * <p>While the server drains ({@link #beginDrain}), {@code /health} answers 503 (a load balancer
 * stops routing to it) and every new completion 503 too, while the completions it accepted (decoding
 * or queued) go on to their end; the drain's future completes when none is left.
 */
final class CompletionRoutes extends AllDirectives {
    private final ActorSystem<?> system;
    private final ActorRef<SchedulerActor.Command> scheduler;
    private final ServeMetrics metrics;
    private final String modelName;
    private final int contextLength;
    private final int vocab;
    private final long defaultDeadlineMs;
    private final AtomicLong ids = new AtomicLong();
    private final Duration askTimeout = Duration.ofSeconds(30);
    /** Completions accepted and not yet answered in full (a streaming one: its last event offered). */
    private final AtomicLong inFlight = new AtomicLong();
    private volatile boolean draining;
    private volatile java.util.function.Supplier<String> pipelineDown = () -> null;
    private volatile java.util.function.Supplier<String> stageHosts = () -> null;
    private volatile java.util.function.Supplier<String> lastLoss = () -> null;
    private final long startedS = System.currentTimeMillis() / 1000;
    /**
     * Requests the server holds at once, running and waiting ({@code max-batch + max-queue}): a request of more
     * samples (each a request of its own, all submitted together) is refused whole.
     */
    private final int maxAtOnce;
    private final CompletableFuture<Void> drained = new CompletableFuture<>();

    CompletionRoutes(ActorSystem<?> system, ActorRef<SchedulerActor.Command> scheduler, ServeMetrics metrics,
                     String modelName, int contextLength, int vocab, long defaultDeadlineMs, int maxAtOnce) {
        this.system = system;
        this.scheduler = scheduler;
        this.metrics = metrics;
        this.modelName = modelName;
        this.contextLength = contextLength;
        this.vocab = vocab;
        this.defaultDeadlineMs = defaultDeadlineMs;
        this.maxAtOnce = maxAtOnce;
        metrics.readHttpSide(inFlight::get, () -> draining);
    }

    /**
     * Every endpoint; what the routing layer refuses by default (an unknown path 404, a wrong method 405 with
     * {@code Allow}, a body over the size limit 413, an unsupported media type 415, an unexpected failure 500)
     * is answered in the same JSON error shape as the server's own refusals ({@link ErrorResponses#asJsonError}).
     */
    Route route() {
        return mapResponse(ErrorResponses::asJsonError, () -> concat(
            path("health", () -> get(() -> complete(health()))),
            path(PathMatchers.segment("health").slash("live"), () -> get(() -> complete(live()))),
            path("metrics", () -> get(() -> complete(HttpResponse.create()
                .withEntity(ServeMetrics.CONTENT_TYPE, metrics.render())))),
            path(PathMatchers.segment("v1").slash("models"), () -> get(() -> complete(HttpResponse.create()
                .withEntity(ContentTypes.APPLICATION_JSON, "{\"object\":\"list\",\"data\":[" + modelJson() + "]}")))),
            path(PathMatchers.segment("v1").slash("models").slash(PathMatchers.segment()), id -> get(() -> complete(
                id.equals(modelName) ? HttpResponse.create().withEntity(ContentTypes.APPLICATION_JSON, modelJson())
                    : modelNotFound(id)))),
            path(PathMatchers.segment("v1").slash("completions"), () -> post(() -> extractRequest(http ->
                entity(Unmarshaller.entityToByteArray(), body -> completions(body, http.entity().getContentType()
                    .getCharsetOption().map(HttpCharset::nioCharset).orElse(StandardCharsets.UTF_8),
                    http.getAttribute(ConnectionScope.KEY).orElse(null))))))).seal());
    }

    /**
     * Starts draining: from now on {@code /health} and new completions answer 503. The future
     * completes once every completion accepted before has been answered in full.
     */
    CompletableFuture<Void> beginDrain() {
        draining = true;
        if (inFlight.get() == 0) {
            drained.complete(null);
        }
        return drained;
    }

    /**
     * Reads why the pipeline cannot run steps now (null: it can). While it cannot, {@code /health}
     * answers 503 with the reason, so a load balancer routes elsewhere; completions are still queued
     * and run once it is up (or end at their deadline).
     */
    void readPipeline(java.util.function.Supplier<String> down) {
        this.pipelineDown = down;
    }

    /**
     * Reads why the pipeline last went down for a lost or stuck stage host, which {@code /health} shows as
     * {@code last_loss} (null: never), also once it is up again.
     */
    void readLastLoss(java.util.function.Supplier<String> reason) {
        this.lastLoss = reason;
    }

    /** Reads the stage hosts' state, a JSON array {@code /health} shows as {@code stage_hosts} (null: none). */
    void readStageHosts(java.util.function.Supplier<String> json) {
        this.stageHosts = json;
    }

    /** Completions accepted and not yet answered in full. */
    long inFlight() {
        return inFlight.get();
    }

    /** The served model, as {@code GET /v1/models} lists it (OpenAI's fields, and its context length). */
    private String modelJson() {
        return "{\"id\":" + Json.quote(modelName) + ",\"object\":\"model\",\"created\":" + startedS
            + ",\"owned_by\":\"troupe\",\"context_length\":" + contextLength + "}";
    }

    private HttpResponse health() {
        String failed = metrics.stepLoopStopped();
        String down = failed != null ? failed : pipelineDown.get();
        String status = failed != null ? "failed" : draining ? "draining" : down != null ? "degraded" : "ok";
        String hosts = stageHosts.get();
        String loss = lastLoss.get();
        String json = "{\"status\":\"" + status + "\",\"model\":" + Json.quote(modelName)
            + (down != null ? ",\"reason\":" + Json.quote(down) : "")
            + (loss != null ? ",\"last_loss\":" + Json.quote(loss) : "")
            + (hosts != null ? ",\"stage_hosts\":" + hosts : "") + "}";
        return HttpResponse.create().withStatus(status.equals("ok") ? StatusCodes.OK : StatusCodes.SERVICE_UNAVAILABLE)
            .withEntity(ContentTypes.APPLICATION_JSON, json);
    }

    /**
     * Liveness, for a probe that restarts a server which cannot recover: 503 once the step loop
     * stopped for good, 200 otherwise (also while draining or while a pipeline stage is lost, which
     * {@code /health} reports and which pass).
     */
    private HttpResponse live() {
        String failed = metrics.stepLoopStopped();
        String json = "{\"status\":\"" + (failed != null ? "failed" : "ok") + "\""
            + (failed != null ? ",\"reason\":" + Json.quote(failed) : "") + "}";
        return HttpResponse.create().withStatus(failed == null ? StatusCodes.OK : StatusCodes.SERVICE_UNAVAILABLE)
            .withEntity(ContentTypes.APPLICATION_JSON, json);
    }

    private HttpResponse drainingError() {
        metrics.onRefusedDraining();
        return error(503, null, "the server is draining: it finishes the requests it holds and takes no new ones");
    }

    /** One accepted completion's place in the in-flight count, given back once, whichever way it ends. */
    private final class Accepted {
        private final AtomicBoolean ended = new AtomicBoolean();

        Accepted() {
            inFlight.incrementAndGet();
        }

        void end() {
            if (ended.compareAndSet(false, true)) {
                if (inFlight.decrementAndGet() == 0 && draining) {
                    drained.complete(null);
                }
            }
        }
    }

    private Route completions(byte[] body, Charset charset, ConnectionScope connection) {
        if (draining) {
            return complete(drainingError());
        }
        CompletionRequest req;
        try {
            req = CompletionRequest.parse(CompletionRequest.decode(body, charset), modelName, contextLength, vocab,
                defaultDeadlineMs);
        } catch (ModelNotFoundException e) {
            metrics.onBadRequest();
            return complete(modelNotFound(e.requested()));
        } catch (BadRequestException e) {
            metrics.onBadRequest();
            return complete(error(400, e.field(), e.getMessage()));
        } catch (IllegalArgumentException e) {
            metrics.onBadRequest();
            return complete(error(400, "body", e.getMessage()));
        }
        if (req.samples() > maxAtOnce) {
            // more than run and wait at once: whether a 429 ends it would depend on timing alone
            metrics.onBadRequest();
            String field = req.bestOf() > req.n() ? "best_of" : req.n() > 1 ? "n" : "prompt";
            return complete(error(400, field, "this request draws " + req.samples() + " samples at once ("
                + req.prompts().length + " prompts x " + req.bestOf() + " per prompt); this server holds at most "
                + maxAtOnce + " requests at once (max-batch + max-queue)"));
        }
        // counted before the second look at the flag: a drain that starts in between waits for this one
        Accepted accepted = new Accepted();
        if (draining) {
            accepted.end();
            return complete(drainingError());
        }
        long id = ids.incrementAndGet();
        return req.stream() ? streaming(id, req, connection, accepted) : unary(id, req, connection, accepted);
    }

    /**
     * A whole response: {@code best_of} samples per prompt, each a request of its own to the scheduler
     * (sample j with seed {@code seed + j}: each is what its prompt gets alone with that seed), of which
     * the best {@code n} are answered. The answer comes when every one has finished; if the queue
     * refuses any, the others are cancelled and the answer is 429.
     */
    private Route unary(long firstId, CompletionRequest req, ConnectionScope connection, Accepted accepted) {
        int samples = req.samples();
        long[] idOf = new long[samples];
        List<CompletableFuture<Generation>> done = new ArrayList<>(samples);
        List<CompletableFuture<SchedulerActor.SubmitReply>> replies = new ArrayList<>(samples);
        AtomicInteger left = new AtomicInteger(samples);
        AtomicReference<String> unserved = new AtomicReference<>();
        for (int i = 0; i < samples; i++) {
            long id = i == 0 ? firstId : ids.incrementAndGet();
            idOf[i] = id;
            CompletableFuture<Generation> finished = new CompletableFuture<>();
            done.add(finished);
            FailingListener listener = new FailingListener() {
                @Override
                public void onToken(Generation g, int token, String textDelta) {
                }

                @Override
                public void onFailed(Generation g, String reason) {
                    unserved.compareAndSet(null, reason);
                    onFinish(g);
                }

                @Override
                public void onFinish(Generation g) {
                    finished.complete(g);               // before finished(id): see watch
                    if (connection != null) {
                        connection.finished(id);
                    }
                    if (left.decrementAndGet() == 0) {
                        accepted.end();
                    }
                }
            };
            replies.add(submit(id, req.promptOf(i), req.samplingOf(i), req, listener, accepted).toCompletableFuture());
        }
        CompletableFuture<Void> answered = CompletableFuture.allOf(replies.toArray(CompletableFuture[]::new));
        answered.whenComplete((v, failure) -> {
            if (failure != null) {
                for (long sample : idOf) {
                    scheduler.tell(new SchedulerActor.Cancel(sample));  // one went unanswered: the request fails
                }
            }
        });
        CompletionStage<HttpResponse> response = answered
            .thenCompose(v -> {
                HttpResponse refused = null;
                for (int i = 0; i < samples && refused == null; i++) {
                    refused = refusal(replies.get(i).join());
                }
                if (refused != null) {
                    for (int i = 0; i < samples; i++) {
                        if (replies.get(i).join() instanceof SchedulerActor.Accepted) {
                            scheduler.tell(new SchedulerActor.Cancel(idOf[i]));     // the whole request is refused
                        }
                    }
                    accepted.end();
                    return CompletableFuture.completedFuture(refused);
                }
                for (int i = 0; i < samples; i++) {
                    watch(connection, idOf[i], done.get(i));
                }
                // a sample the server could not serve fails the whole request, with the reason
                return CompletableFuture.allOf(done.toArray(CompletableFuture[]::new)).thenApply(w ->
                    unserved.get() != null ? error(503, null, "the server cannot serve: " + unserved.get())
                        : HttpResponse.create().withEntity(ContentTypes.APPLICATION_JSON,
                            completionJson(firstId, done.stream().map(CompletableFuture::join).toList(), req)));
            });
        return completeWithFuture(response);
    }

    private Route streaming(long id, CompletionRequest req, ConnectionScope connection, Accepted accepted) {
        EventQueue queue = new EventQueue();
        // the queue is materialized with the response, inside the connection's stream; the response stream
        // ends when the request finishes or the client goes away: cancelling a finished request is a no-op,
        // cancelling a live one frees its blocks; events that pile up while the connection is busy writing go
        // out together in one write
        Source<ByteString, NotUsed> events = Source.<ByteString>queue(contextLength + 8)
            .mapMaterializedValue(q -> {
                queue.attach(q);
                return NotUsed.notUsed();
            })
            .conflate(ByteString::concat).watchTermination((nu, done) -> {
                done.whenComplete((d, t) -> scheduler.tell(new SchedulerActor.Cancel(id)));
                return nu;
            });
        CompletableFuture<Void> finished = new CompletableFuture<>();
        StreamEvents encoder = new StreamEvents(id, System.currentTimeMillis() / 1000, modelName,
            req.includeUsage());
        CompletionLogprobs logprobs = req.sampling().logprobs() >= 0 ? new CompletionLogprobs() : null;
        FailingListener listener = new FailingListener() {
            private int delivered;          // generated tokens heard of
            private int sent;               // generated tokens whose text (and log-probabilities) went out
            private boolean echoed;         // the prompt's chunk went out (echo)

            /**
             * With echo, the first chunk is the prompt, with the log-probabilities of its tokens when asked
             * (known once it is prefilled, so it goes out with the first token or the finish).
             */
            private void echo(Generation g) {
                if (!req.sampling().echo() || echoed) {
                    return;
                }
                echoed = true;
                queue.offer(logprobs == null ? encoder.token(g.promptText())
                    : encoder.token(g.promptText(), logprobs.range(g, 0, g.promptTokens())));
            }

            @Override
            public void onToken(Generation g, int token, String textDelta) {
                echo(g);
                // a token's text may go out later than the token (an unfinished character, a possible stop
                // string); the chunk that carries it carries its log-probabilities
                int released = token >= 0 ? g.releasedAfter(delivered++) : g.outputTokens();
                if (textDelta.isEmpty()) {
                    return;
                }
                if (logprobs == null) {
                    queue.offer(encoder.token(textDelta));
                    return;
                }
                int from = g.promptTokens() + sent;
                sent = released;
                queue.offer(encoder.token(textDelta, logprobs.range(g, from, g.promptTokens() + released)));
            }

            @Override
            public void onFinish(Generation g) {
                finished.complete(null);
                if (connection != null) {
                    connection.finished(id);
                }
                if (queue.isCompleted()) {
                    accepted.end();
                    return;                     // the client went away
                }
                echo(g);
                queue.offer(encoder.finish(g.finishReason().wireName(), usageJson(g)));
                queue.complete();
                accepted.end();
            }

            @Override
            public void onFailed(Generation g, String reason) {
                finished.complete(null);
                if (connection != null) {
                    connection.finished(id);
                }
                if (!queue.isCompleted()) {     // the status went out with the first byte: an error event ends it
                    queue.offer(StreamEvents.error(ErrorResponses.errorJson(503, null,
                        "the server cannot serve: " + reason, null)));
                    queue.complete();
                }
                accepted.end();
            }
        };
        CompletionStage<HttpResponse> response = submit(id, req.prompts()[0], req.sampling(), req, listener, accepted)
            .thenApply(reply -> {
            HttpResponse refused = refusal(reply);
            if (refused != null) {
                accepted.end();
                queue.fail(new IllegalStateException("rejected"));
                return refused;
            }
            watch(connection, id, finished);
            return HttpResponse.create()
                .withEntity(HttpEntities.createChunked(MediaTypes.TEXT_EVENT_STREAM.toContentType(), events));
        });
        return completeWithFuture(response);
    }

    /** Registers an accepted request with its connection, so the client's close cancels it; none after it ended. */
    private static void watch(ConnectionScope connection, long id, CompletableFuture<?> ended) {
        if (connection != null) {
            connection.started(id);
            if (ended.isDone()) {
                connection.finished(id);
            }
        }
    }

    /**
     * Asks the scheduler to admit the request. An ask that fails (no answer in time) ends its place in
     * flight and cancels the request, which may still be admitted later: nobody would wait for it.
     */
    private CompletionStage<SchedulerActor.SubmitReply> submit(long id, int[] prompt, SamplingParams sampling,
        CompletionRequest req, GenerationListener listener, Accepted accepted) {
        CompletionStage<SchedulerActor.SubmitReply> reply = AskPattern.ask(scheduler,
            replyTo -> new SchedulerActor.Submit(id, prompt, sampling, req.deadlineMs(), listener, replyTo),
            askTimeout, system.scheduler());
        reply.whenComplete((r, failure) -> {
            if (failure != null) {
                scheduler.tell(new SchedulerActor.Cancel(id));      // enqueued long after its Submit
                accepted.end();
            }
        });
        return reply;
    }

    /** 404 for a model other than the one served, in OpenAI's words and shape ({@code model_not_found}). */
    private HttpResponse modelNotFound(String requested) {
        return error(404, "model", ModelNotFoundException.message(requested, modelName), "model_not_found");
    }

    /**
     * The whole response: {@code n} choices for each prompt, in the order of the prompts (the best of
     * its {@code best_of} samples, best first); usage summed over every sample drawn, each prompt's
     * tokens counted once.
     */
    private String completionJson(long id, List<Generation> samples, CompletionRequest req) {
        List<Generation> chosen = req.bestOf() > req.n() ? best(samples, req.bestOf(), req.n()) : samples;
        boolean withLogprobs = req.sampling().logprobs() >= 0;
        StringBuilder choices = new StringBuilder();
        long prompt = 0;
        long completion = 0;
        for (int i = 0; i < chosen.size(); i++) {
            Generation g = chosen.get(i);
            boolean echo = g.params().echo();
            String logprobs = withLogprobs ? CompletionLogprobs.json(g, echo) : "null";
            choices.append(i == 0 ? "" : ",").append("{\"index\":").append(i).append(",\"text\":")
                .append(Json.quote(echo ? g.promptText() + g.text() : g.text())).append(",\"logprobs\":")
                .append(logprobs).append(",\"finish_reason\":\"").append(g.finishReason().wireName()).append("\"}");
            prompt += i % req.n() == 0 ? g.promptTokens() : 0;
        }
        for (Generation g : samples) {
            completion += g.completionTokens();
        }
        return StreamEvents.head(id, System.currentTimeMillis() / 1000, modelName) + ",\"choices\":[" + choices
            + "],\"usage\":" + usageJson(prompt, completion) + "}";
    }

    /**
     * Each prompt's {@code n} samples of the highest log-probability per generated token, best first
     * (ties in the order drawn), from {@code samples}: {@code bestOf} for each prompt, a prompt's together.
     */
    static List<Generation> best(List<Generation> samples, int bestOf, int n) {
        List<Generation> out = new ArrayList<>(samples.size() / bestOf * n);
        for (int p = 0; p < samples.size(); p += bestOf) {
            List<Generation> of = new ArrayList<>(samples.subList(p, p + bestOf));
            of.sort(java.util.Comparator.comparingDouble(CompletionLogprobs::perToken).reversed());     // stable
            out.addAll(of.subList(0, n));
        }
        return out;
    }

    private static String usageJson(Generation g) {
        return usageJson(g.promptTokens(), g.completionTokens());
    }

    private static String usageJson(long prompt, long completion) {
        return "{\"prompt_tokens\":" + prompt + ",\"completion_tokens\":" + completion + ",\"total_tokens\":"
            + (prompt + completion) + "}";
    }
}
