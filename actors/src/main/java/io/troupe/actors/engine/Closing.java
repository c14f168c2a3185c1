package io.troupe.actors.engine;

/**
 * Closing several parts in a fixed order where every part is tried even after one fails: each step returns the
 * failure to throw so far, the first one, with the later ones added to it as suppressed. Used by what owns many
 * resources and must release all of them ({@link StageWorker}, the cluster's epoch wiring).
 */
public final class Closing {
    private Closing() {
    }

    /**
     * Closes {@code part} unless it is {@code null}.
     *
     * @param failure the failure so far (the caller's own, or an earlier part's), or {@code null}
     * @return {@code failure} with {@code part}'s failure added to it, or {@code part}'s failure when there was
     *     none before, or {@code failure} as it was
     */
    public static Throwable close(Throwable failure, AutoCloseable part) {
        if (part == null) {
            return failure;
        }
        try {
            part.close();
        } catch (Throwable t) {
            return add(failure, t);
        }
        return failure;
    }

    /** {@code failure} with {@code t} added to it as suppressed ({@code t} itself when there was none before). */
    public static Throwable add(Throwable failure, Throwable t) {
        if (failure == null) {
            return t;
        }
        if (t != failure) {
            failure.addSuppressed(t);
        }
        return failure;
    }

    /**
     * Throws {@code failure}, unless {@code null}: as it is when unchecked, else wrapped in an
     * {@link IllegalStateException} that starts with {@code what}.
     */
    public static void rethrow(Throwable failure, String what) {
        if (failure instanceof RuntimeException e) {
            throw e;
        }
        if (failure instanceof Error e) {
            throw e;
        }
        if (failure != null) {
            throw new IllegalStateException(what + ": " + failure, failure);
        }
    }
}
