package io.troupe.actors.serve;

/**
 * A request that names a model other than the one served, which the server answers 404 with
 * {@code "code":"model_not_found"} (as OpenAI does); {@link #requested()} is the name asked for.
 */
final class ModelNotFoundException extends RuntimeException {
    private final String requested;

    ModelNotFoundException(String requested, String served) {
        super(message(requested, served));
        this.requested = requested;
    }

    String requested() {
        return requested;
    }

    /**
     * OpenAI's message for a model it does not have, naming the one served: {@code requested} is shown
     * up to {@code 64} characters, so a huge name does not make a huge answer.
     */
    static String message(String requested, String served) {
        String shown = requested.length() > 64 ? requested.substring(0, 64) + "..." : requested;
        return "The model `" + shown + "` does not exist; this server serves `" + served + "`";
    }
}
