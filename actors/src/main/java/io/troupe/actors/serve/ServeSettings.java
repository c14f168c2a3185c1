package io.troupe.actors.serve;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
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
 * @param prefixCache     keep computed blocks of keys and values for requests whose tokens begin the same way
 *                        (a shared system prompt, few-shot examples): they take the blocks instead of computing
 *                        them, with the same tokens as a result ({@link io.troupe.models.infer.PagedKvCache})
 */
public record ServeSettings(String host, int port, Quantization quantization, int maxBatch, int tokenBudget,
    int maxQueue,
                            long kvCacheMib, int kvBlockTokens, KvPrecision kvPrecision, long deadlineMs,
                            int retryAfterS, boolean isolateStepCore, boolean prefillThread,
                            int prefillAhead, long drainTimeoutMs, boolean prefixCache) {
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
            c.getDuration("drain-timeout").toMillis(), c.getBoolean("prefix-cache"));
    }

    /** The defaults: {@code troupe.serve} of the {@code reference.conf} shipped in the jar, nothing overridden. */
    public static ServeSettings defaults() {
        return from(ConfigFactory.defaultReference());
    }

    /** A builder holding these settings, to change some by name. */
    public Builder toBuilder() {
        return new Builder(this);
    }

    public ServeSettings withPort(int v) {
        return toBuilder().port(v).build();
    }

    public ServeSettings withMaxQueue(int v) {
        return toBuilder().maxQueue(v).build();
    }

    public ServeSettings withQuantization(Quantization v) {
        return toBuilder().quantization(v).build();
    }

    public ServeSettings withKvCacheMib(long v) {
        return toBuilder().kvCacheMib(v).build();
    }

    public ServeSettings withHost(String v) {
        return toBuilder().host(v).build();
    }

    public ServeSettings withTokenBudget(int v) {
        return toBuilder().tokenBudget(v).build();
    }

    public ServeSettings withIsolateStepCore(boolean v) {
        return toBuilder().isolateStepCore(v).build();
    }

    public ServeSettings withKvPrecision(KvPrecision v) {
        return toBuilder().kvPrecision(v).build();
    }

    public ServeSettings withPrefillThread(boolean v) {
        return toBuilder().prefillThread(v).build();
    }

    public ServeSettings withPrefillAhead(int v) {
        return toBuilder().prefillAhead(v).build();
    }

    public ServeSettings withDrainTimeoutMs(long v) {
        return toBuilder().drainTimeoutMs(v).build();
    }

    public ServeSettings withPrefixCache(boolean v) {
        return toBuilder().prefixCache(v).build();
    }

    /** These settings with {@code b} sequences per step at most, and a token budget raised to {@code b} if below. */
    public ServeSettings withMaxBatch(int b) {
        return toBuilder().maxBatch(b).tokenBudget(Math.max(tokenBudget, b)).build();
    }

    /** Settings changed by name from a starting point ({@link #toBuilder}); {@link #build} checks them. */
    public static final class Builder {
        private String host;
        private int port;
        private Quantization quantization;
        private int maxBatch;
        private int tokenBudget;
        private int maxQueue;
        private long kvCacheMib;
        private int kvBlockTokens;
        private KvPrecision kvPrecision;
        private long deadlineMs;
        private int retryAfterS;
        private boolean isolateStepCore;
        private boolean prefillThread;
        private int prefillAhead;
        private long drainTimeoutMs;
        private boolean prefixCache;

        private Builder(ServeSettings s) {
            host = s.host;
            port = s.port;
            quantization = s.quantization;
            maxBatch = s.maxBatch;
            tokenBudget = s.tokenBudget;
            maxQueue = s.maxQueue;
            kvCacheMib = s.kvCacheMib;
            kvBlockTokens = s.kvBlockTokens;
            kvPrecision = s.kvPrecision;
            deadlineMs = s.deadlineMs;
            retryAfterS = s.retryAfterS;
            isolateStepCore = s.isolateStepCore;
            prefillThread = s.prefillThread;
            prefillAhead = s.prefillAhead;
            drainTimeoutMs = s.drainTimeoutMs;
            prefixCache = s.prefixCache;
        }

        public Builder host(String v) {
            host = v;
            return this;
        }

        public Builder port(int v) {
            port = v;
            return this;
        }

        public Builder quantization(Quantization v) {
            quantization = v;
            return this;
        }

        public Builder maxBatch(int v) {
            maxBatch = v;
            return this;
        }

        public Builder tokenBudget(int v) {
            tokenBudget = v;
            return this;
        }

        public Builder maxQueue(int v) {
            maxQueue = v;
            return this;
        }

        public Builder kvCacheMib(long v) {
            kvCacheMib = v;
            return this;
        }

        public Builder kvBlockTokens(int v) {
            kvBlockTokens = v;
            return this;
        }

        public Builder kvPrecision(KvPrecision v) {
            kvPrecision = v;
            return this;
        }

        public Builder deadlineMs(long v) {
            deadlineMs = v;
            return this;
        }

        public Builder retryAfterS(int v) {
            retryAfterS = v;
            return this;
        }

        public Builder isolateStepCore(boolean v) {
            isolateStepCore = v;
            return this;
        }

        public Builder prefillThread(boolean v) {
            prefillThread = v;
            return this;
        }

        public Builder prefillAhead(int v) {
            prefillAhead = v;
            return this;
        }

        public Builder drainTimeoutMs(long v) {
            drainTimeoutMs = v;
            return this;
        }

        public Builder prefixCache(boolean v) {
            prefixCache = v;
            return this;
        }

        /** The settings; an out-of-range value is refused, naming it. */
        public ServeSettings build() {
            return new ServeSettings(host, port, quantization, maxBatch, tokenBudget, maxQueue, kvCacheMib,
                kvBlockTokens, kvPrecision, deadlineMs, retryAfterS, isolateStepCore, prefillThread, prefillAhead,
                drainTimeoutMs, prefixCache);
        }
    }
}
