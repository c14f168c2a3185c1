package io.troupe.actors.serve;

import com.typesafe.config.Config;
import io.troupe.models.infer.KvPrecision;
import io.troupe.models.infer.Quantization;

/**
 * Settings of {@code troupe serve}, from {@code troupe.serve} in {@code reference.conf} (each key
 * documented there) with command-line overrides.
 *
 * @param maxBatch        sequences in one decoding step at most (1 = no batching)
 * @param tokenBudget     tokens (decodes + prefill chunks) in one step at most
 * @param maxQueue        waiting requests before 429
 * @param kvCacheMib      memory for the paged KV cache, MiB
 * @param kvBlockTokens   token positions per KV block
 * @param kvPrecision     how the KV cache holds keys and values (f32, or bf16: half the bytes)
 * @param deadlineMs      a request's default deadline
 * @param retryAfterS     the Retry-After of a 429
 * @param isolateStepCore on one stage, pin the decode step thread to a CPU of its own and the process's
 *                        other threads to the rest ({@link CoreIsolation}; Linux, two CPUs or more)
 * @param prefillThread   on one stage with two CPUs or more, prefill requests that arrive while others
 *                        decode on a thread of their own, beside the decoding steps ({@link DecodeLoop})
 * @param prefillAhead    with the prefill thread: requests it may prefill ahead of a full batch, each joining
 *                        with one row when a place frees (0: only into the batch's free places)
 * @param drainTimeoutMs  on a stop (SIGTERM), how long the server drains before it ends what is left: it answers
 *                        503 to new work and to {@code /health} while the requests it holds run to their end
 *                        ({@link InferenceServer#drain}); 0 ends them at once
 */
public record ServeSettings(String host, int port, Quantization quantization, int maxBatch, int tokenBudget,
    int maxQueue,
                            long kvCacheMib, int kvBlockTokens, KvPrecision kvPrecision, long deadlineMs,
                            int retryAfterS, boolean isolateStepCore, boolean prefillThread,
                            int prefillAhead, long drainTimeoutMs) {
    public ServeSettings {
        require(port >= 0 && port <= 65535, "port must be in [0, 65535]: port=" + port);
        require(maxBatch >= 1, "max-batch must be >= 1: max-batch=" + maxBatch);
        require(tokenBudget >= maxBatch, "token-budget must be >= max-batch: token-budget=" + tokenBudget
            + ", max-batch=" + maxBatch);
        require(maxQueue >= 0, "max-queue must be >= 0: max-queue=" + maxQueue);
        require(kvCacheMib >= 1, "kv-cache-mib must be >= 1: kv-cache-mib=" + kvCacheMib);
        require(kvBlockTokens >= 1, "kv-block-tokens must be >= 1: kv-block-tokens=" + kvBlockTokens);
        require(kvPrecision != null, "kv-cache-dtype must be f32 or bf16");
        require(deadlineMs >= 1, "deadline must be >= 1 ms: deadline=" + deadlineMs + "ms");
        require(retryAfterS >= 1, "retry-after must be >= 1 s: retry-after=" + retryAfterS + "s");
        require(prefillAhead >= 0, "prefill-ahead must be >= 0: prefill-ahead=" + prefillAhead);
        require(drainTimeoutMs >= 0, "drain-timeout must be >= 0: drain-timeout=" + drainTimeoutMs + "ms");
    }

    private static void require(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException(message);
        }
    }

    /** Reads {@code troupe.serve} of {@code root}. */
    public static ServeSettings from(Config root) {
        Config c = root.getConfig("troupe.serve");
        Quantization quantize;
        KvPrecision kv;
        try {
            quantize = Quantization.parse(c.getString("quantize"));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("troupe.serve.quantize: " + e.getMessage(), e);
        }
        try {
            kv = KvPrecision.parse(c.getString("kv-cache-dtype"));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("troupe.serve.kv-cache-dtype: " + e.getMessage(), e);
        }
        return new ServeSettings(c.getString("host"), c.getInt("port"), quantize,
            c.getInt("max-batch"), c.getInt("token-budget"), c.getInt("max-queue"), c.getLong("kv-cache-mib"),
            c.getInt("kv-block-tokens"), kv,
            c.getDuration("deadline").toMillis(), (int) c.getDuration("retry-after").toSeconds(),
            c.getBoolean("isolate-step-core"), c.getBoolean("prefill-thread"), c.getInt("prefill-ahead"),
            c.getDuration("drain-timeout").toMillis());
    }

    public ServeSettings withPort(int p) {
        return new ServeSettings(host, p, quantization, maxBatch, tokenBudget, maxQueue, kvCacheMib, kvBlockTokens,
            kvPrecision, deadlineMs, retryAfterS, isolateStepCore, prefillThread, prefillAhead,
            drainTimeoutMs);
    }

    public ServeSettings withMaxBatch(int b) {
        return new ServeSettings(host, port, quantization, b, Math.max(tokenBudget, b), maxQueue, kvCacheMib,
            kvBlockTokens, kvPrecision, deadlineMs, retryAfterS, isolateStepCore, prefillThread, prefillAhead,
            drainTimeoutMs);
    }

    public ServeSettings withQuantization(Quantization q) {
        return new ServeSettings(host, port, q, maxBatch, tokenBudget, maxQueue, kvCacheMib, kvBlockTokens,
            kvPrecision, deadlineMs, retryAfterS, isolateStepCore, prefillThread, prefillAhead,
            drainTimeoutMs);
    }

    public ServeSettings withKvCacheMib(long mib) {
        return new ServeSettings(host, port, quantization, maxBatch, tokenBudget, maxQueue, mib, kvBlockTokens,
            kvPrecision, deadlineMs, retryAfterS, isolateStepCore, prefillThread, prefillAhead,
            drainTimeoutMs);
    }

    public ServeSettings withMaxQueue(int q) {
        return new ServeSettings(host, port, quantization, maxBatch, tokenBudget, q, kvCacheMib, kvBlockTokens,
            kvPrecision, deadlineMs, retryAfterS, isolateStepCore, prefillThread, prefillAhead,
            drainTimeoutMs);
    }

    public ServeSettings withHost(String h) {
        return new ServeSettings(h, port, quantization, maxBatch, tokenBudget, maxQueue, kvCacheMib, kvBlockTokens,
            kvPrecision, deadlineMs, retryAfterS, isolateStepCore, prefillThread, prefillAhead,
            drainTimeoutMs);
    }

    public ServeSettings withTokenBudget(int t) {
        return new ServeSettings(host, port, quantization, maxBatch, t, maxQueue, kvCacheMib, kvBlockTokens,
            kvPrecision, deadlineMs, retryAfterS, isolateStepCore, prefillThread, prefillAhead,
            drainTimeoutMs);
    }

    public ServeSettings withIsolateStepCore(boolean on) {
        return new ServeSettings(host, port, quantization, maxBatch, tokenBudget, maxQueue, kvCacheMib, kvBlockTokens,
            kvPrecision, deadlineMs, retryAfterS, on, prefillThread, prefillAhead, drainTimeoutMs);
    }

    public ServeSettings withKvPrecision(KvPrecision p) {
        return new ServeSettings(host, port, quantization, maxBatch, tokenBudget, maxQueue, kvCacheMib, kvBlockTokens,
            p, deadlineMs, retryAfterS, isolateStepCore, prefillThread, prefillAhead,
            drainTimeoutMs);
    }

    public ServeSettings withPrefillThread(boolean on) {
        return new ServeSettings(host, port, quantization, maxBatch, tokenBudget, maxQueue, kvCacheMib, kvBlockTokens,
            kvPrecision, deadlineMs, retryAfterS, isolateStepCore, on, prefillAhead, drainTimeoutMs);
    }

    public ServeSettings withPrefillAhead(int n) {
        return new ServeSettings(host, port, quantization, maxBatch, tokenBudget, maxQueue, kvCacheMib, kvBlockTokens,
            kvPrecision, deadlineMs, retryAfterS, isolateStepCore, prefillThread, n, drainTimeoutMs);
    }

    public ServeSettings withDrainTimeoutMs(long ms) {
        return new ServeSettings(host, port, quantization, maxBatch, tokenBudget, maxQueue, kvCacheMib, kvBlockTokens,
            kvPrecision, deadlineMs, retryAfterS, isolateStepCore, prefillThread, prefillAhead, ms);
    }
}
