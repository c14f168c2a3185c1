package io.troupe.models.gpt;

import io.troupe.models.memory.Recompute;
import io.troupe.runtime.device.Device;
import io.troupe.runtime.tensor.Tensor;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;

/**
 * The recomputation workspace a {@link Gpt} stage's slots share, for the mode set by
 * {@link Gpt#recompute}: under selective recomputation one (B, NH/tp, T, T) tensor for every slot's
 * and block's attention probabilities; under full recomputation one block's tensors for every slot
 * and block, plus the pool of {@link GptWeightInputs} that keep what W reads from B until W when
 * B and W are split. It allocates, lends, measures and frees these.
 */
final class GptRecompute implements AutoCloseable {
    private final Device dev;
    private final GptConfig cfg;
    private final int tpSize;
    private final int residualRows;
    private final int rows;
    private final int blocks;
    /** Selective recomputation: one (B, NH/tp, T, T) tensor for every slot's and block's attention probabilities. */
    private Tensor sharedAtt;
    /** Full recomputation: one block's tensors, shared by every slot and block (null otherwise). */
    private GptActivations sharedBlock;
    /** Full recomputation with B split from W: what W reads, kept from B; free ones for reuse. */
    private final ArrayDeque<GptWeightInputs> freeWeightInputs = new ArrayDeque<>();
    private final List<GptWeightInputs> allWeightInputs = new ArrayList<>();

    GptRecompute(Device dev, GptConfig cfg, int tpSize, int residualRows, int rows, int blocks) {
        this.dev = dev;
        this.cfg = cfg;
        this.tpSize = tpSize;
        this.residualRows = residualRows;
        this.rows = rows;
        this.blocks = blocks;
    }

    /** Frees the workspace of the mode in force and allocates {@code mode}'s. */
    void set(Recompute mode) {
        close();
        switch (mode) {
            case NONE -> {
            }
            case SELECTIVE -> sharedAtt = dev.allocate(rows, cfg.nHead() / tpSize, cfg.seqLen(), cfg.seqLen());
            case FULL -> sharedBlock = new GptActivations(dev, cfg, tpSize, residualRows, rows, 1, false, false,
                null, null);
            default -> throw new IllegalStateException("unhandled recompute mode " + mode);
        }
    }

    /** The attention probabilities selective recomputation shares; null under another mode. */
    Tensor sharedAtt() {
        return sharedAtt;
    }

    /** The block tensors full recomputation shares; null under another mode. */
    GptActivations sharedBlock() {
        return sharedBlock;
    }

    /** A free {@link GptWeightInputs} from the pool, a new one when none is free. */
    GptWeightInputs takeWeightInputs() {
        GptWeightInputs kept = freeWeightInputs.poll();
        if (kept == null) {
            kept = new GptWeightInputs(dev, cfg, tpSize, residualRows, rows, blocks);
            allWeightInputs.add(kept);
        }
        return kept;
    }

    /** Returns {@code kept} to the pool. */
    void giveBack(GptWeightInputs kept) {
        freeWeightInputs.push(kept);
    }

    /** Bytes of every pooled {@link GptWeightInputs}, free or lent. */
    long weightInputsBytes() {
        long b = 0;
        for (GptWeightInputs wi : allWeightInputs) {
            b += wi.bytes();
        }
        return b;
    }

    /** Bytes of what every slot shares: selective's probabilities, full's one block. */
    long sharedBytes() {
        long b = sharedAtt == null ? 0 : sharedAtt.numel() * 4;
        return sharedBlock == null ? b : b + sharedBlock.bytes();
    }

    @Override
    public void close() {
        if (sharedAtt != null) {
            sharedAtt.close();
            sharedAtt = null;
        }
        if (sharedBlock != null) {
            sharedBlock.close();
            sharedBlock = null;
        }
        for (GptWeightInputs wi : allWeightInputs) {
            wi.close();
        }
        allWeightInputs.clear();
        freeWeightInputs.clear();
    }
}
