package io.troupe.runtime.transport;

/** A send gave up at its deadline: the peer never connected, or stayed back-pressured without progress. */
public class TransportTimeoutException extends TransportException {
    public TransportTimeoutException(String message) {
        super(message);
    }
}
