package io.troupe.actors.serve;

/** A request the server refuses with 400; {@link #field()} names the offending field (or "body"). */
final class BadRequestException extends RuntimeException {
    private final String field;

    BadRequestException(String field, String message) {
        super(message);
        this.field = field;
    }

    String field() {
        return field;
    }
}
