package io.troupe.models.gpt;

import io.troupe.models.ParamSpec;
import io.troupe.models.memory.GradientArena;
import java.util.ArrayList;
import java.util.List;

/**
 * The {@link GradientArena} of a GPT stage: what B writes resident (the LayerNorms, and mlp.fc's
 * bias, formed with the GELU backward); then the parameters that W writes, in W's order (lm_head;
 * per block from the last: mlp.proj, mlp.fc's weight, attn.proj, attn.qkv, each bias before its
 * weight; the position then token embeddings), packed into buckets of at most
 * {@code bucketElements} floats (W forms a linear's bias before its weight, and both embeddings
 * before it reports either). A linear's weight that does not fit in what is left of a bucket
 * is cut into blocks of whole rows (a bucket ends inside it, the next starts with its next rows),
 * so the window is the bucket size whatever the largest linear. Embeddings stay whole (a larger
 * one is a bucket of its own). Every bucket starts at the same offset, just after the resident
 * region.
 */
final class GptGradientArena {
    private GptGradientArena() {
    }

    static GradientArena of(ParameterLayout layout, int firstBlock, int blocks, boolean first, boolean last,
                            long bucketElements) {
        if (bucketElements < 1) {
            throw new IllegalArgumentException("bucketElements must be positive: " + bucketElements);
        }
        List<ParamSpec> specs = layout.specs();
        List<GradientArena.Piece> pieces = new ArrayList<>();
        List<Integer> resident = new ArrayList<>();
        long residentElements = residentPieces(specs, pieces, resident);
        // What W writes between two reports: a linear's bias, its weight (in row blocks when cut), both embeddings.
        List<int[]> groups = new ArrayList<>();
        if (last) {
            groups.add(new int[] {index(layout, "lm_head.weight")});
        }
        for (int l = firstBlock + blocks - 1; l >= firstBlock; l--) {
            String p = "blocks." + l + ".";
            for (String lin : new String[] {"mlp.proj", "mlp.fc", "attn.proj", "attn.qkv"}) {
                if (!lin.equals("mlp.fc")) {
                    groups.add(new int[] {index(layout, p + lin + ".bias")});
                }
                groups.add(new int[] {index(layout, p + lin + ".weight")});
            }
        }
        if (first) {
            groups.add(new int[] {index(layout, "pos_emb.weight"), index(layout, "tok_emb.weight")});
        }
        List<int[]> buckets = new ArrayList<>();
        List<Integer> current = new ArrayList<>();
        long used = 0;
        long window = 0;
        for (int[] g : groups) {
            ParamSpec s = specs.get(g[0]);
            int i = g[0];
            boolean rows = g.length == 1 && rowElements(s) > 0;
            if (rows && used + s.numel() > bucketElements) {
                long row = s.shape()[1];
                long total = s.shape()[0];
                for (long r = 0; r < total; ) {
                    if (used > 0 && used + row > bucketElements) {
                        buckets.add(toArray(current));
                        current.clear();
                        used = 0;
                    }
                    long take = Math.max(1, Math.min(total - r, (bucketElements - used) / row));
                    current.add(pieces.size());
                    pieces.add(new GradientArena.Piece(i, r * row, take * row, residentElements + used));
                    used += take * row;
                    r += take;
                    window = Math.max(window, used);
                }
                continue;
            }
            long n = 0;
            for (int j : g) {
                n += specs.get(j).numel();
            }
            if (used > 0 && used + n > bucketElements) {
                buckets.add(toArray(current));
                current.clear();
                used = 0;
            }
            for (int j : g) {
                current.add(pieces.size());
                pieces.add(new GradientArena.Piece(j, 0, specs.get(j).numel(), residentElements + used));
                used += specs.get(j).numel();
            }
            window = Math.max(window, used);
        }
        if (!current.isEmpty()) {
            buckets.add(toArray(current));
        }
        return new GradientArena(residentElements, window, pieces, buckets.toArray(new int[0][]), toArray(resident));
    }

    /**
     * The arena of the runtime's buckets: bucket {@code b} is the flat range
     * {@code [starts[b], starts[b] + numels[b])} of the stage's whole gradient buffer, each
     * parameter (or block of whole rows of a linear's weight, {@link #rowElements}) in it that W
     * writes at its offset in the range from the window's start (the window is the largest
     * range); the parameters B writes resident and whole, as in {@link #of}. W reports in reverse
     * parameter order, a cut weight's blocks in the buckets' order, so ranges in descending order
     * are completed one after the other.
     */
    static GradientArena ofBuckets(ParameterLayout layout, long[] starts, long[] numels) {
        List<ParamSpec> specs = layout.specs();
        List<GradientArena.Piece> pieces = new ArrayList<>();
        List<Integer> resident = new ArrayList<>();
        long residentElements = residentPieces(specs, pieces, resident);
        long[] covered = new long[specs.size()];
        for (int k : resident) {
            covered[pieces.get(k).parameter()] = pieces.get(k).elements();
        }
        List<int[]> buckets = new ArrayList<>();
        long window = 0;
        for (int b = 0; b < starts.length; b++) {
            List<Integer> current = new ArrayList<>();
            for (int i = 0; i < specs.size(); i++) {
                ParamSpec s = specs.get(i);
                long lo = Math.max(s.localOffset(), starts[b]);
                long hi = Math.min(s.localOffset() + s.numel(), starts[b] + numels[b]);
                if (lo >= hi) {
                    continue;
                }
                long first = lo - s.localOffset();
                long n = hi - lo;
                boolean whole = n == s.numel();
                long row = rowElements(s);
                if (!whole && (row == 0 || first % row != 0 || n % row != 0)) {
                    throw new IllegalArgumentException(s.name() + " is cut off by bucket " + b + " [" + starts[b] + ", "
                        + (starts[b] + numels[b]) + ") other than between whole rows of its gradient");
                }
                if (!isResident(s.name())) {
                    current.add(pieces.size());
                    pieces.add(new GradientArena.Piece(i, first, n, residentElements + lo - starts[b]));
                    covered[i] += n;
                }
            }
            buckets.add(toArray(current));
            window = Math.max(window, numels[b]);
        }
        for (int i = 0; i < specs.size(); i++) {
            if (covered[i] != specs.get(i).numel()) {
                throw new IllegalArgumentException(specs.get(i).name() + " is not covered once by the buckets: "
                    + covered[i] + " of " + specs.get(i).numel() + " elements");
            }
        }
        return new GradientArena(residentElements, window, pieces, buckets.toArray(new int[0][]), toArray(resident));
    }

    /**
     * The row width in which W can form {@code s}'s gradient block by block: a linear's weight
     * (2-D, not an embedding, not resident); 0 for the rest, formed whole.
     */
    static int rowElements(ParamSpec s) {
        return s.shape().length == 2 && !s.name().endsWith("_emb.weight") && !isResident(s.name()) ? s.shape()[1]
            : 0;
    }

    /** B writes these: the LayerNorms, and mlp.fc's bias (formed with the GELU backward). */
    static boolean isResident(String name) {
        return name.contains(".ln1.") || name.contains(".ln2.") || name.startsWith("ln_f.")
            || name.endsWith("mlp.fc.bias");
    }

    /** Adds the resident pieces (parameter order, packed from 0); returns their elements. */
    private static long residentPieces(List<ParamSpec> specs, List<GradientArena.Piece> pieces,
                                       List<Integer> resident) {
        long residentElements = 0;
        for (int i = 0; i < specs.size(); i++) {
            if (isResident(specs.get(i).name())) {
                resident.add(pieces.size());
                pieces.add(new GradientArena.Piece(i, 0, specs.get(i).numel(), residentElements));
                residentElements += specs.get(i).numel();
            }
        }
        return residentElements;
    }

    private static int[] toArray(List<Integer> xs) {
        return xs.stream().mapToInt(Integer::intValue).toArray();
    }

    private static int index(ParameterLayout layout, String name) {
        List<ParamSpec> specs = layout.specs();
        for (int i = 0; i < specs.size(); i++) {
            if (specs.get(i).name().equals(name)) {
                return i;
            }
        }
        throw new IllegalArgumentException("no parameter named '" + name + "'");
    }
}
