package io.troupe.models.parallel;

import io.troupe.models.gpt.GptConfig;
import io.troupe.models.gpt.ParameterLayout;
import java.util.Arrays;

/**
 * Which transformer blocks each model stage holds: stage {@code g} owns blocks
 * {@code [start(g), start(g+1))}; stage 0 also holds the embeddings, the last stage ln_f, the head
 * and the loss. Either balanced by parameter count (the embeddings and head count towards the first
 * and last stage) or given explicitly as block counts per stage.
 */
public record StagePartition(int[] blocksPerStage) {

    public StagePartition {
        blocksPerStage = blocksPerStage.clone();
        for (int b : blocksPerStage) {
            if (b < 0) {
                throw new IllegalArgumentException("blocks per stage must be >= 0: " + Arrays.toString(blocksPerStage));
            }
        }
    }

    public int stages() {
        return blocksPerStage.length;
    }

    public int startBlock(int stage) {
        int s = 0;
        for (int i = 0; i < stage; i++) {
            s += blocksPerStage[i];
        }
        return s;
    }

    public int endBlock(int stage) {
        return startBlock(stage) + blocksPerStage[stage];
    }

    /**
     * An explicit partition, e.g. {@code "3,3,2"}; must cover exactly {@code nLayer} blocks in {@code stages} stages.
     */
    public static StagePartition explicit(String list, GptConfig cfg, int stages) {
        String[] parts = list.split(",");
        int[] blocks = new int[parts.length];
        try {
            for (int i = 0; i < parts.length; i++) {
                blocks[i] = Integer.parseInt(parts[i].trim());
            }
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("partition must be a comma-separated list of block counts, got '" + list
                + "'", e);
        }
        if (blocks.length != stages) {
            throw new IllegalArgumentException("partition '" + list + "' has " + blocks.length
                + " stages, the layout needs " + stages);
        }
        int total = Arrays.stream(blocks).sum();
        if (total != cfg.nLayer()) {
            throw new IllegalArgumentException("partition '" + list + "' covers " + total
                + " blocks, the model has n_layer=" + cfg.nLayer());
        }
        return new StagePartition(blocks);
    }

    /**
     * Balances parameter counts: a greedy pass that closes a stage once it reaches its share of the
     * remaining parameters, keeping at least one block for every later stage.
     */
    public static StagePartition balanced(GptConfig cfg, int stages) {
        if (stages < 1 || stages > cfg.nLayer()) {
            throw new IllegalArgumentException("pipeline stages must be between 1 and the number of blocks: n_layer="
                + cfg.nLayer() + ", stages=" + stages);
        }
        long block = ParameterLayout.stage(cfg, 0, 1, false, false).numel();
        long embed = ParameterLayout.stage(cfg, 0, 0, true, false).numel();
        long head = ParameterLayout.stage(cfg, 0, 0, false, true).numel();
        int[] blocks = new int[stages];
        int next = 0;
        long remaining = embed + head + block * cfg.nLayer();
        for (int s = 0; s < stages; s++) {
            int later = stages - s - 1;
            if (later == 0) {
                blocks[s] = cfg.nLayer() - next;
                break;
            }
            long target = remaining / (later + 1);
            long have = (s == 0 ? embed : 0) + block;
            int count = 1;
            next++;
            while (cfg.nLayer() - next > later && have + block / 2 <= target) {
                have += block;
                count++;
                next++;
            }
            blocks[s] = count;
            remaining -= have;
        }
        return new StagePartition(blocks);
    }

    @Override
    public String toString() {
        return Arrays.toString(blocksPerStage);
    }
}
