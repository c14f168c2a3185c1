package io.troupe.actors.serve;

import org.apache.pekko.actor.ExtendedActorSystem;
import org.apache.pekko.event.MarkerLoggingAdapter;

/**
 * The log one server's HTTP layer writes to: the actor system's own log (same bus, source, class and filter, so
 * every line reads as before), carrying that server's {@link ServeMetrics}. pekko-http creates the parsing error
 * handler by class name, with no arguments, and hands it only this log among what belongs to the server; so
 * {@link JsonParsingErrorHandler} counts a request the HTTP layer refuses before routing in the metrics of the
 * server that refused it, and two servers in one JVM never count into each other.
 */
final class HttpLayerLog extends MarkerLoggingAdapter {
    private final ServeMetrics metrics;

    /** The log of {@code system} (as {@code system.log()} writes), carrying {@code metrics}. */
    HttpLayerLog(ExtendedActorSystem system, ServeMetrics metrics) {
        super(system.eventStream(), system.getClass().getName() + "(" + system.name() + ")", system.getClass(),
            system.logFilter());
        this.metrics = metrics;
    }

    /** The metrics of the server whose HTTP layer writes here. */
    ServeMetrics metrics() {
        return metrics;
    }
}
