package io.troupe.actors.serve;

import java.util.HashSet;
import java.util.Set;
import java.util.function.LongConsumer;
import org.apache.pekko.http.javadsl.model.AttributeKey;

/**
 * The requests of one HTTP connection still running. The HTTP layer keeps serving a half-closed
 * connection (a client's FIN is no error to it), so the server watches the end of each
 * connection's request stream itself: when the client closes, every request it still has running
 * is cancelled, which frees its KV blocks at once. Thread-safe.
 */
final class ConnectionScope {
    /** Where a request finds its connection's scope. */
    static final AttributeKey<ConnectionScope> KEY = AttributeKey.create("troupe-connection", ConnectionScope.class);

    private final LongConsumer cancel;
    private final Set<Long> running = new HashSet<>();
    private boolean closed;

    ConnectionScope(LongConsumer cancel) {
        this.cancel = cancel;
    }

    /** A request of this connection started; cancelled at once when the client has already gone. */
    void started(long id) {
        synchronized (this) {
            if (!closed) {
                running.add(id);
                return;
            }
        }
        cancel.accept(id);
    }

    /** A request of this connection ended (its response is complete or being sent). */
    synchronized void finished(long id) {
        running.remove(id);
    }

    /** The client closed its side (or the connection failed): cancels what still runs. */
    void clientClosed() {
        Long[] ids;
        synchronized (this) {
            closed = true;
            ids = running.toArray(new Long[0]);
            running.clear();
        }
        for (Long id : ids) {
            cancel.accept(id);
        }
    }
}
