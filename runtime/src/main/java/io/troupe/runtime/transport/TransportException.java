package io.troupe.runtime.transport;

/** A send failed for good: the publication is closed, its position is exhausted, or a deadline passed. */
public class TransportException extends RuntimeException {
    public TransportException(String message) {
        super(message);
    }

    public TransportException(String message, Throwable cause) {
        super(message, cause);
    }
}
