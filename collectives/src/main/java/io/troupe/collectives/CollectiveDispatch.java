package io.troupe.collectives;

import io.troupe.collectives.compress.ErrorFeedback;
import io.troupe.collectives.compress.Int8Codec;
import org.agrona.UnsafeApi;

/**
 * How a {@link CollectiveEngine} runs each collective: it picks the algorithm from the op, the
 * settings and the size, signs the op with what runs it, does the local copies before the algorithm
 * and the segment copy or int8 sum after it, and owns the algorithms and the scratch memory they use
 * (staging, workspace, small scratch). Agent thread only; allocation-free in steady state.
 */
final class CollectiveDispatch {
    private final CollectiveEngine engine;
    private final CollectiveSettings settings;
    private final int n;
    private final int me;
    private final ErrorFeedback errorFeedback;
    private final RingAlgorithm ring = new RingAlgorithm();
    private final RecursiveDoublingAlgorithm doubling = new RecursiveDoublingAlgorithm();
    private final ChainBroadcast chain = new ChainBroadcast();
    private final GatherReference reference = new GatherReference();
    private final NativeScratch staging = new NativeScratch();
    private final NativeScratch workspace = new NativeScratch();
    private final NativeScratch small = new NativeScratch();
    private final ReduceKernels kernels = new ReduceKernels();

    private EngineAlgorithm running = EngineAlgorithm.NONE;
    private AfterRun post = AfterRun.NOTHING;
    private long signature;

    CollectiveDispatch(CollectiveEngine engine, CollectiveSettings settings, int n, int me,
        ErrorFeedback errorFeedback) {
        this.engine = engine;
        this.settings = settings;
        this.n = n;
        this.me = me;
        this.errorFeedback = errorFeedback;
        UnsafeApi.setMemory(small.ensure(4096), 4096, (byte) 0);
    }

    ReduceKernels kernels() {
        return kernels;
    }

    RingAlgorithm ring() {
        return ring;
    }

    /** The algorithm running the current collective ({@link EngineAlgorithm#NONE} when none runs). */
    EngineAlgorithm running() {
        return running;
    }

    /** The current collective's signature (tag, op, algorithm and compression, count). */
    long signature() {
        return signature;
    }

    /** Before a collective starts: nothing runs and nothing is to be done after it. */
    void reset() {
        post = AfterRun.NOTHING;
        running = EngineAlgorithm.NONE;
    }

    /** Signs {@code h} and starts the algorithm that runs it; a group of one runs none. */
    void start(CollectiveHandle h) {
        long count = h.count;
        boolean average = h.reduceOp == ReduceOp.AVERAGE;
        Compression compression = settings.compression();
        switch (h.op) {
            case ALL_REDUCE -> {
                if (n == 1) {
                    signLocal(h);
                    return;
                }
                if (compression == Compression.INT8 || compression == Compression.INT8_ERROR_FEEDBACK) {
                    startInt8(h);
                    return;
                }
                CollectiveAlgorithm a = settings.algorithm();
                if (a == CollectiveAlgorithm.AUTO) {
                    a = count * 4 <= settings.smallMaxBytes() ? CollectiveAlgorithm.RECURSIVE_DOUBLING
                        : CollectiveAlgorithm.RING;
                }
                boolean bf16 = compression == Compression.BF16;
                if (a == CollectiveAlgorithm.REFERENCE) {
                    sign(h, EngineAlgorithm.REFERENCE);
                    reference.start(engine, h.address, count, average);
                } else if (a == CollectiveAlgorithm.RECURSIVE_DOUBLING) {
                    sign(h, EngineAlgorithm.RECURSIVE_DOUBLING);
                    doubling.start(engine, h.address, count, bf16, average, bf16 ? staging.ensure(count * 2) : 0);
                } else {
                    sign(h, EngineAlgorithm.RING);
                    ring.start(engine, RingPhases.ALL_REDUCE, h.address, count, bf16 ? RingWire.BF16 : RingWire.F32,
                        average, bf16 ? staging.ensure(count * 2) : 0, small.ensure(4096));
                }
            }
            case REDUCE_SCATTER -> {
                long ws = workspace.ensure(count * 4);
                ReduceKernels.copy(h.address, ws, count * 4);
                post = AfterRun.COPY_SEGMENT;
                if (n == 1) {
                    signLocal(h);
                    return;
                }
                sign(h, EngineAlgorithm.RING);
                // bf16 halves the bytes as in the all-reduce; int8 has no reduce-scatter form (float32 then).
                boolean bf16 = compression == Compression.BF16;
                ring.start(engine, RingPhases.REDUCE_SCATTER, ws, count, bf16 ? RingWire.BF16 : RingWire.F32, average,
                    bf16 ? staging.ensure(count * 2) : 0, small.ensure(4096));
            }
            case ALL_GATHER -> {
                long s0 = Communicator.segmentStart(count, n, me);
                ReduceKernels.copy(h.otherAddress, h.address + s0 * 4, (Communicator.segmentStart(count, n, me + 1)
                    - s0) * 4);
                if (n == 1) {
                    signLocal(h);
                    return;
                }
                sign(h, EngineAlgorithm.RING);
                ring.start(engine, RingPhases.ALL_GATHER, h.address, count, RingWire.F32, false, 0, small.ensure(4096));
            }
            case BROADCAST -> {
                if (n == 1) {
                    signLocal(h);
                    return;
                }
                sign(h, EngineAlgorithm.CHAIN);
                chain.start(engine, h.address, count, h.root);
            }
            case BARRIER -> {
                if (n == 1) {
                    signLocal(h);
                    return;
                }
                sign(h, EngineAlgorithm.RECURSIVE_DOUBLING);
                UnsafeApi.putFloat(small.ensure(4096) + 64, 0f);
                doubling.start(engine, small.ensure(4096) + 64, 1, false, false, 0);
            }
            default -> throw new IllegalStateException("unknown op " + h.op);
        }
    }

    /**
     * Records the op's signature and what runs it. A group of one runs nothing; its ops are signed as
     * ring ops ({@link #signLocal}).
     */
    private void sign(CollectiveHandle h, EngineAlgorithm algorithm) {
        running = n == 1 ? EngineAlgorithm.NONE : algorithm;
        signature = CollectiveKey.signature(h.tag, h.op.ordinal(),
            CollectiveKey.variant(algorithm.wireCode, settings.compression()), h.count);
    }

    /** Signs an op a group of one completes at start. */
    private void signLocal(CollectiveHandle h) {
        sign(h, EngineAlgorithm.RING);
    }

    /** int8: quantise (g + e), all-gather every member's quantised vector, sum them in member order. */
    private void startInt8(CollectiveHandle h) {
        long count = h.count;
        long cb = Int8Codec.encodedBytes(count);
        long gathered = workspace.ensure(cb * n);
        long mine = gathered + cb * me;
        if (settings.compression() == Compression.INT8_ERROR_FEEDBACK) {
            long residual = errorFeedback.residualAddress(h.tag, count);
            long v = staging.ensure(count * 4);
            ReduceKernels.copy(h.address, v, count * 4);
            kernels.addInto(v, residual, count);
            Int8Codec.encode(v, count, mine, residual);
        } else {
            Int8Codec.encode(h.address, count, mine, 0);
        }
        post = AfterRun.INT8_SUM;
        sign(h, EngineAlgorithm.RING);
        ring.start(engine, RingPhases.ALL_GATHER, gathered, cb * n, RingWire.BYTES, false, 0, small.ensure(4096));
    }

    int runStep() {
        return switch (running) {
            case RING -> ring.doWork();
            case RECURSIVE_DOUBLING -> doubling.doWork();
            case CHAIN -> chain.doWork();
            case REFERENCE -> reference.doWork();
            case NONE -> 0;
        };
    }

    boolean runDone() {
        return switch (running) {
            case RING -> ring.isDone();
            case RECURSIVE_DOUBLING -> doubling.isDone();
            case CHAIN -> chain.isDone();
            case REFERENCE -> reference.isDone();
            case NONE -> true;
        };
    }

    int waitingFor() {
        return switch (running) {
            case RING -> ring.waitingFor();
            case RECURSIVE_DOUBLING -> doubling.waitingFor();
            case CHAIN -> chain.waitingFor();
            case REFERENCE -> reference.waitingFor();
            case NONE -> -1;
        };
    }

    /** After the algorithm finished {@code h}: copies out this member's segment or sums the int8 vectors. */
    void afterRun(CollectiveHandle h) {
        if (post == AfterRun.COPY_SEGMENT) {
            long s0 = Communicator.segmentStart(h.count, n, me);
            ReduceKernels.copy(workspace.ensure(h.count * 4) + s0 * 4, h.otherAddress,
                (Communicator.segmentStart(h.count, n, me + 1) - s0) * 4);
        } else if (post == AfterRun.INT8_SUM) {
            long cb = Int8Codec.encodedBytes(h.count);
            long gathered = workspace.ensure(cb * n);
            UnsafeApi.setMemory(h.address, h.count * 4, (byte) 0);
            for (int k = 0; k < n; k++) {
                Int8Codec.decodeAdd(gathered + cb * k, h.count, h.address);
            }
            if (h.reduceOp == ReduceOp.AVERAGE) {
                kernels.divide(h.address, h.count, n);
            }
        }
    }

    /** The current collective ends: nothing runs. */
    void stop() {
        running = EngineAlgorithm.NONE;
    }

    /** The current collective failed: the reference gather and any piece arriving in place are given up. */
    void abandon() {
        if (running == EngineAlgorithm.REFERENCE) {
            reference.abandon();
        }
        ring.abandonInPlace();
    }

    /** Native bytes of the staging, workspace and small scratch. */
    long scratchBytes() {
        return staging.capacityBytes() + workspace.capacityBytes() + small.capacityBytes();
    }

    void free() {
        staging.free();
        workspace.free();
        small.free();
    }

    /**
     * What {@link #afterRun} does after the algorithm: nothing, copy out this member's segment, or sum the int8
     * vectors.
     */
    private enum AfterRun {
        NOTHING,
        COPY_SEGMENT,
        INT8_SUM
    }
}
