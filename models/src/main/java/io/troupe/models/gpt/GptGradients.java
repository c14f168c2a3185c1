package io.troupe.models.gpt;

import io.troupe.models.ParamSpec;
import io.troupe.models.memory.GradientArena;
import io.troupe.models.parallel.tp.LinearWeightGradient;
import io.troupe.runtime.device.Device;
import io.troupe.runtime.tensor.Tensor;
import java.util.Arrays;
import java.util.function.IntConsumer;

/**
 * A GPT stage's gradient buffer and where each parameter's gradient lives in it: the whole flat
 * buffer of the {@link ParameterLayout} or, under ZeRO 2, the smaller buffer of a
 * {@link GradientArena} (resident parameters plus one shared bucket window), with each parameter's
 * offset there, its arena pieces, and window views of the pieces that are blocks of a weight's rows.
 * It hands out the gradient views the layers write, reports a finished parameter (its index, or
 * under an arena the indices of its pieces), and forms one linear's weight gradient the way the
 * arena needs it (bias first, a row-blocked weight block by block).
 */
final class GptGradients implements AutoCloseable {
    private final Device dev;
    private final ParameterLayout layout;
    /** The whole flat gradient buffer, or under ZeRO 2 the {@link #arena} buffer. */
    private Tensor grads;
    /** Where each parameter's gradient starts in {@link #grads} when it is an arena; null: the layout's offsets. */
    private long[] gradOffsets;
    /** ZeRO 2: per parameter its arena pieces, and the window views of pieces that are row blocks (else null). */
    private int[][] piecesOf;
    private Tensor[] rowBlockGrads;
    private GradientArena arena;

    GptGradients(Device dev, ParameterLayout layout) {
        this.dev = dev;
        this.layout = layout;
        this.grads = dev.allocate((int) layout.numel());
    }

    /** The gradient buffer: the whole layout's, or the arena's. */
    Tensor buffer() {
        return grads;
    }

    /** Whether the gradients live in an arena. */
    boolean inArena() {
        return gradOffsets != null;
    }

    /** The view of parameter {@code name}'s gradient; null for a weight the arena keeps in row blocks. */
    Tensor view(String name) {
        ParamSpec s = layout.get(name);
        if (gradOffsets != null) {
            long at = gradOffsets[layout.specs().indexOf(s)];
            return at < 0 ? null : grads.view(at, s.shape());  // null: a weight the arena keeps in row blocks
        }
        return grads.view(s.localOffset(), s.shape());
    }

    /**
     * Replaces the whole buffer by {@code arena}'s (left unfilled: the caller rebinds its layers to
     * the new views and zeroes it).
     */
    void moveInto(GradientArena arena) {
        grads.close();
        grads = dev.allocate((int) (arena.residentElements() + arena.bucketElements()));
        int n = layout.specs().size();
        gradOffsets = new long[n];
        Arrays.fill(gradOffsets, -1);
        int[] count = new int[n];
        for (GradientArena.Piece piece : arena.pieces()) {
            count[piece.parameter()]++;
        }
        piecesOf = new int[n][];
        for (int i = 0; i < n; i++) {
            piecesOf[i] = new int[count[i]];
            count[i] = 0;
        }
        rowBlockGrads = new Tensor[arena.pieces().size()];
        for (int k = 0; k < arena.pieces().size(); k++) {
            GradientArena.Piece piece = arena.pieces().get(k);
            piecesOf[piece.parameter()][count[piece.parameter()]++] = k;
            if (piece.elements() == layout.specs().get(piece.parameter()).numel()) {
                gradOffsets[piece.parameter()] = piece.arenaOffset();
            } else {
                rowBlockGrads[k] = grads.view(piece.arenaOffset(), (int) piece.elements());
            }
        }
        this.arena = arena;
    }

    /**
     * W of one linear ({@code dOut}, {@code in} as its backward takes them) and the reports of its
     * bias ({@code biasIndex}, -1 when B formed it) and weight. Under an arena the bias is formed
     * and reported before the weight, and a weight the arena keeps in row blocks is formed block by
     * block into the window, each reported once written: bitwise the rows of the whole gemm.
     */
    void linearWeight(LinearWeightGradient lin, Tensor dOut, Tensor in, int bt, int biasIndex, int weightIndex,
                      IntConsumer parameterDone) {
        if (gradOffsets == null) {
            lin.backwardWeight(dOut, in, bt, biasIndex >= 0);
            if (biasIndex >= 0) {
                done(parameterDone, biasIndex);
            }
            done(parameterDone, weightIndex);
            return;
        }
        // Under an arena the bias may end a bucket whose window the weight then reuses: report it first.
        if (biasIndex >= 0) {
            lin.backwardBias(dOut, bt);
            done(parameterDone, biasIndex);
        }
        if (gradOffsets[weightIndex] >= 0) {
            lin.backwardWeight(dOut, in, bt, false);
            done(parameterDone, weightIndex);
            return;
        }
        long width = layout.specs().get(weightIndex).shape()[1];
        for (int k : piecesOf[weightIndex]) {
            lin.backwardWeightRows(dOut, in, bt, (int) (arena.pieces().get(k).firstElement() / width),
                rowBlockGrads[k]);
            parameterDone.accept(k);
        }
    }

    /** Reports parameter {@code i} finished: its index, or under an arena the indices of its pieces. */
    void done(IntConsumer parameterDone, int i) {
        if (piecesOf == null) {
            parameterDone.accept(i);
            return;
        }
        for (int k : piecesOf[i]) {
            parameterDone.accept(k);
        }
    }

    @Override
    public void close() {
        grads.close();
    }
}
