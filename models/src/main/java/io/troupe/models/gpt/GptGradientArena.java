package io.troupe.models.gpt;

import io.troupe.models.ParamSpec;
import io.troupe.models.memory.GradientArena;
import java.util.ArrayList;
import java.util.List;

/**
 * The {@link GradientArena} of a GPT stage: what B writes resident (the LayerNorms, and mlp.fc's
 * bias, formed with the GELU backward); the groups that W writes between two reports, in W's order
 * (lm_head; per block from the last: mlp.proj, mlp.fc's weight, attn.proj, attn.qkv, each weight
 * with its bias; the position then token embeddings), merged greedily into buckets of at most
 * {@code bucketElements} floats (a larger group is a bucket of its own). Every bucket starts at the
 * same offset, just after the resident region.
 */
final class GptGradientArena {
    private GptGradientArena() {
    }

    static GradientArena of(ParameterLayout layout, int firstBlock, int blocks, boolean first, boolean last,
                            long bucketElements) {
        List<ParamSpec> specs = layout.specs();
        long[] offset = new long[specs.size()];
        List<Integer> resident = new ArrayList<>();
        long residentElements = 0;
        for (int i = 0; i < specs.size(); i++) {
            String n = specs.get(i).name();
            // B writes these: the LayerNorms, and mlp.fc's bias (formed with the GELU backward).
            if (n.contains(".ln1.") || n.contains(".ln2.") || n.startsWith("ln_f.") || n.endsWith("mlp.fc.bias")) {
                resident.add(i);
                offset[i] = residentElements;
                residentElements += specs.get(i).numel();
            }
        }
        List<int[]> groups = new ArrayList<>();
        if (last) {
            groups.add(new int[] {index(layout, "lm_head.weight")});
        }
        for (int l = firstBlock + blocks - 1; l >= firstBlock; l--) {
            String p = "blocks." + l + ".";
            for (String lin : new String[] {"mlp.proj", "mlp.fc", "attn.proj", "attn.qkv"}) {
                groups.add(lin.equals("mlp.fc") ? new int[] {index(layout, p + lin + ".weight")}
                    : new int[] {index(layout, p + lin + ".bias"), index(layout, p + lin + ".weight")});
            }
        }
        if (first) {
            groups.add(new int[] {index(layout, "pos_emb.weight"), index(layout, "tok_emb.weight")});
        }
        List<int[]> buckets = new ArrayList<>();
        List<Integer> current = new ArrayList<>();
        long currentElements = 0;
        long window = 0;
        for (int[] g : groups) {
            long n = 0;
            for (int i : g) {
                n += specs.get(i).numel();
            }
            if (!current.isEmpty() && currentElements + n > bucketElements) {
                buckets.add(current.stream().mapToInt(Integer::intValue).toArray());
                current.clear();
                currentElements = 0;
            }
            for (int i : g) {
                offset[i] = residentElements + currentElements;
                currentElements += specs.get(i).numel();
                current.add(i);
            }
            window = Math.max(window, currentElements);
        }
        if (!current.isEmpty()) {
            buckets.add(current.stream().mapToInt(Integer::intValue).toArray());
        }
        return new GradientArena(residentElements, window, offset, buckets.toArray(new int[0][]),
            resident.stream().mapToInt(Integer::intValue).toArray());
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
