package io.troupe.models.infer;

import java.util.List;

/**
 * A sequence's chunk in a step or a prefill: {@code tokens} rows, the logits row of its last token when it samples
 * one (else -1), and, where it scores its prompt, {@code scored} prompt rows from position {@code scoreFrom} whose
 * logits are rows {@code scoreRow ..}.
 */
record ScheduledChunk(Generation generation, int tokens, int logitRow, int scoreFrom, int scoreRow, int scored) {
    /**
     * Adds the next {@code chunk} tokens of {@code g} to {@code into} and their chunk to {@code list}: the
     * logits of its last token asked for when it samples one (a request that only scores its prompt samples
     * none), and those of each prompt row whose next token it scores and has not yet (a sequence recomputed
     * after a preemption scores nothing twice). Returns {@code chunk}.
     */
    static int add(Generation g, int chunk, StepBatch into, List<ScheduledChunk> list) {
        int from = g.numComputed();
        boolean samples = g.params().maxTokens() > 0;
        int row = -1;
        int scoreFrom = -1;
        int scoreRow = -1;
        int scored = 0;
        for (int j = 0; j < chunk; j++) {
            int pos = from + j;
            boolean scores = g.scoresAt(pos);
            int r = into.add(g.token(pos), pos, g.table(), scores || (samples && pos == g.numTokens() - 1));
            if (r < 0) {
                continue;
            }
            if (scores) {
                if (scored++ == 0) {
                    scoreFrom = pos;
                    scoreRow = r;
                }
            } else {
                row = r;
            }
        }
        list.add(new ScheduledChunk(g, chunk, row, scoreFrom, scoreRow, scored));
        return chunk;
    }

    /** Gives its sequence the scores of the prompt rows it asked logits for. */
    void score(float[] logits, int vocab) {
        for (int i = 0; i < scored; i++) {
            generation.score(scoreFrom + i, logits, (scoreRow + i) * vocab, vocab);
        }
    }
}
