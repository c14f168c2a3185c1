package io.troupe.models.parallel;

import io.troupe.collectives.Communicator;
import io.troupe.models.ParamSpec;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.gpt.GptPlacements;
import io.troupe.models.gpt.ParameterLayout;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The parameters of a model under a {@code dp × pp × tp} layout: one description shared by the
 * model (which views it builds), the optimizer (weight decay by name, what counts in the gradient
 * norm), the collectives (which gradients reduce over dp, which over tp) and the checkpoints
 * (parameters stored by name with global shapes, read back as any layout's slices).
 *
 * <p>A rank {@code (dp_i, pp_i, tp_i)} holds {@link #local}{@code (its model stages, tp, tp_i)}: the
 * parameters of its stage, each as its tp shard, packed in model order into one flat buffer. Its
 * dp peers hold the same buffer; ZeRO stage 1/2 would give each of them one contiguous
 * {@link Local#zeroSegment} of it for the optimizer moments (stage 1) and reduced gradients (stage 2).
 */
public final class ParallelParameterLayout {
    private final List<ParallelParameter> parameters;
    private final Map<String, ParallelParameter> byName = new LinkedHashMap<>();

    public ParallelParameterLayout(List<ParallelParameter> parameters) {
        this.parameters = List.copyOf(parameters);
        for (ParallelParameter p : this.parameters) {
            if (byName.put(p.name(), p) != null) {
                throw new IllegalArgumentException("parameter named twice: " + p.name());
            }
        }
    }

    /** GPT's parameters under {@code partition}, placed by {@link GptPlacements}. */
    public static ParallelParameterLayout gpt(GptConfig cfg, StagePartition partition, boolean sequenceParallel) {
        List<ParallelParameter> out = new ArrayList<>();
        int last = partition.stages() - 1;
        for (ParamSpec s : ParameterLayout.full(cfg).specs()) {
            int stage;
            if (s.name().startsWith("blocks.")) {
                int block = Integer.parseInt(s.name().substring("blocks.".length(), s.name().indexOf('.',
                    "blocks.".length())));
                stage = 0;
                while (partition.endBlock(stage) <= block) {
                    stage++;
                }
            } else {
                stage = s.name().startsWith("tok_emb") || s.name().startsWith("pos_emb") ? 0 : last;
            }
            out.add(new ParallelParameter(s.name(), s.shape(), s.globalOffset(), stage,
                GptPlacements.of(s.name(), sequenceParallel)));
        }
        return new ParallelParameterLayout(out);
    }

    public List<ParallelParameter> parameters() {
        return parameters;
    }

    public ParallelParameter get(String name) {
        ParallelParameter p = byName.get(name);
        if (p == null) {
            throw new IllegalArgumentException("no parameter named '" + name + "'");
        }
        return p;
    }

    public boolean contains(String name) {
        return byName.containsKey(name);
    }

    /** What tp member {@code tpIndex} of model stage {@code modelStage} holds. */
    public Local local(int modelStage, int tpSize, int tpIndex) {
        if (tpIndex < 0 || tpIndex >= tpSize) {
            throw new IllegalArgumentException("tp_i must be in [0, " + tpSize + "): tp_i=" + tpIndex);
        }
        List<Local.Entry> entries = new ArrayList<>();
        long offset = 0;
        for (ParallelParameter p : parameters) {
            if (p.modelStage() == modelStage) {
                int[] shape = p.localShape(tpSize);
                entries.add(new Local.Entry(p, shape, offset));
                offset += p.localNumel(tpSize);
            }
        }
        return new Local(modelStage, tpSize, tpIndex, Collections.unmodifiableList(entries), offset);
    }

    /**
     * Model-state bytes of the largest rank of {@code layout} (float32 parameters, their gradients,
     * and AdamW's two moments), over its {@code v} model stages: what the ranks allocate for them.
     */
    public RankMemory memoryPerRank(Layout layout) {
        return memoryPerRank(layout, 0);
    }

    /**
     * The plan of {@link #memoryPerRank(Layout)} under ZeRO stage {@code zero}: from stage 1 each
     * data-parallel rank holds the AdamW moments of its slice only (at most {@code ceil(numel / dp)}
     * elements); at stage 2 also the gradients, as its slice plus one bucket window (at most 1/16 of
     * the slice). Stage 0 is {@link #memoryPerRank(Layout)}.
     *
     * @throws IllegalArgumentException naming {@code zero} when it is not 0, 1 or 2
     */
    public RankMemory memoryPerRank(Layout layout, int zero) {
        if (zero < 0 || zero > 2) {
            throw new IllegalArgumentException("zero must be 0, 1 or 2: zero=" + zero);
        }
        long most = 0;
        for (int p = 0; p < layout.pp(); p++) {
            long numel = 0;
            for (int v = 0; v < layout.virtualStages(); v++) {
                numel += local(v * layout.pp() + p, layout.tp(), 0).numel();
            }
            most = Math.max(most, numel);
        }
        long slice = (most + layout.dp() - 1) / layout.dp();
        long grads = zero == 2 ? slice + (slice + 15) / 16 : most;
        long moments = zero >= 1 ? slice : most;
        return new RankMemory(4 * most, 4 * grads, 8 * moments);
    }

    /** Bytes one rank allocates for parameters, gradients and optimizer moments. */
    public record RankMemory(long paramBytes, long gradBytes, long optimizerBytes) {

        public long totalBytes() {
            return paramBytes + gradBytes + optimizerBytes;
        }

        /** {@code memory per rank: params 1.2 MiB, grads 1.2 MiB, optimizer 2.4 MiB}. */
        @Override
        public String toString() {
            return String.format(java.util.Locale.ROOT,
                "memory per rank: params %.1f MiB, grads %.1f MiB, optimizer %.1f MiB",
                paramBytes / 1048576.0, gradBytes / 1048576.0, optimizerBytes / 1048576.0);
        }
    }

    /**
     * One rank's flat buffer: its parameters' shards in model order.
     *
     * @param numel elements in the flat buffer (parameters; gradients and each AdamW moment the same)
     */
    public record Local(int modelStage, int tpSize, int tpIndex, List<Entry> entries, long numel) {

        /** A shard inside the flat buffer. */
        public record Entry(ParallelParameter parameter, int[] shape, long localOffset) {
        }

        /**
         * The elements {@code [start, end)} of the flat buffer that data-parallel member {@code dpIndex}
         * of {@code dp} owns under ZeRO stage 1/2: the collectives' reduce-scatter segment, so a
         * reduce-scatter of the gradient buffer leaves each member exactly the gradients its moments need.
         */
        public long[] zeroSegment(int dp, int dpIndex) {
            if (dpIndex < 0 || dpIndex >= dp) {
                throw new IllegalArgumentException("dp_i must be in [0, " + dp + "): dp_i=" + dpIndex);
            }
            return new long[] {Communicator.segmentStart(numel, dp, dpIndex), Communicator.segmentStart(numel, dp,
                dpIndex + 1)};
        }

        /** Bytes of float32 parameters + gradients + two AdamW moments this rank allocates for them. */
        public long modelStateBytes() {
            return numel * 4 * 4;
        }
    }
}
