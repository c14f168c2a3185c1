package io.troupe.actors.cli;

/** A bad command line or configuration value; the message names it. Exit code 2. */
public final class UsageException extends RuntimeException {
    public UsageException(String message) {
        super(message);
    }
}
