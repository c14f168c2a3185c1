package io.troupe.actors.serve;

import java.util.ArrayList;
import java.util.List;
import org.apache.pekko.stream.BoundedSourceQueue;
import org.apache.pekko.util.ByteString;

/**
 * The hand-off of one streaming response's events from the decode loop's events thread to the
 * response's {@code Source.queue}, which pekko-http materializes inside the connection's own stream
 * when it starts the response. Events offered before that are held and go out first, in order; so
 * are a completion or failure. Materializing the queue with the response (rather than
 * pre-materializing it, which runs it as a separate stream behind an actor publisher) keeps each
 * token to one asynchronous hand-off into the connection's stream.
 */
final class EventQueue {
    private volatile BoundedSourceQueue<ByteString> queue;
    private List<ByteString> pending = new ArrayList<>();
    private boolean completed;
    private Throwable failure;

    /** Called once, when the response's stream is materialized: sends what was held, then goes direct. */
    synchronized void attach(BoundedSourceQueue<ByteString> q) {
        if (queue != null) {
            q.fail(new IllegalStateException("a streaming response's events can be sent once"));
            return;
        }
        for (ByteString b : pending) {
            q.offer(b);
        }
        pending = null;
        if (failure != null) {
            q.fail(failure);
        } else if (completed) {
            q.complete();
        }
        queue = q;
    }

    void offer(ByteString event) {
        BoundedSourceQueue<ByteString> q = queue;
        if (q != null) {
            q.offer(event);
            return;
        }
        synchronized (this) {
            if (queue != null) {
                queue.offer(event);
            } else {
                pending.add(event);
            }
        }
    }

    void complete() {
        BoundedSourceQueue<ByteString> q = queue;
        if (q != null) {
            q.complete();
            return;
        }
        synchronized (this) {
            if (queue != null) {
                queue.complete();
            } else {
                completed = true;
            }
        }
    }

    void fail(Throwable t) {
        synchronized (this) {
            if (queue != null) {
                queue.fail(t);
            } else {
                failure = t;
            }
        }
    }

    /** True once the response's stream has ended (the client went away, or the queue was completed). */
    boolean isCompleted() {
        BoundedSourceQueue<ByteString> q = queue;
        return q != null && q.isCompleted();
    }
}
