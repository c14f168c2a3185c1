package io.troupe.models.infer;

/**
 * Hears one generation's progress. Called on the thread that drives the {@link BatchScheduler}
 * (the serving actor), after each step; implementations must return quickly and not block.
 */
public interface GenerationListener {
    /** A token was appended; {@code textDelta} is the newly releasable text (may be empty). */
    void onToken(Generation generation, int token, String textDelta);

    /** The generation ended; its blocks are already free. Called once. */
    void onFinish(Generation generation);

    /** A listener that ignores everything. */
    GenerationListener NONE = new GenerationListener() {
        @Override
        public void onToken(Generation generation, int token, String textDelta) {
        }

        @Override
        public void onFinish(Generation generation) {
        }
    };
}
