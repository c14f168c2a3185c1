package io.troupe.models.infer;

import java.util.Arrays;

/**
 * The input of one decoding step: the tokens of every scheduled sequence concatenated into one
 * "super sequence" without padding (decodes one token each, prefill chunks several), each with its
 * position and its sequence's block table; the rows whose next-token logits are wanted are marked.
 * Reused from step to step; owned by one thread at a time.
 */
public final class StepBatch {
    private int size;
    private int[] tokens = new int[64];
    private int[] positions = new int[64];
    private BlockTable[] tables = new BlockTable[64];
    private int logitCount;
    private int[] logitRows = new int[16];

    public void clear() {
        Arrays.fill(tables, 0, size, null);
        size = 0;
        logitCount = 0;
    }

    /**
     * Appends a token at {@code position} of the sequence whose blocks are {@code table}. Returns
     * the token's logits row (its index in {@link KvCachedGpt#forward}'s output) when
     * {@code wantLogits}, else -1.
     */
    public int add(int token, int position, BlockTable table, boolean wantLogits) {
        if (size == tokens.length) {
            tokens = Arrays.copyOf(tokens, 2 * size);
            positions = Arrays.copyOf(positions, 2 * size);
            tables = Arrays.copyOf(tables, 2 * size);
        }
        tokens[size] = token;
        positions[size] = position;
        tables[size] = table;
        size++;
        if (!wantLogits) {
            return -1;
        }
        if (logitCount == logitRows.length) {
            logitRows = Arrays.copyOf(logitRows, 2 * logitCount);
        }
        logitRows[logitCount] = size - 1;
        return logitCount++;
    }

    public int size() {
        return size;
    }

    public int logitCount() {
        return logitCount;
    }

    int token(int i) {
        return tokens[i];
    }

    int position(int i) {
        return positions[i];
    }

    BlockTable table(int i) {
        return tables[i];
    }

    int logitRow(int j) {
        return logitRows[j];
    }
}
