package io.troupe.actors.serve;

import org.apache.pekko.event.LoggingAdapter;
import org.apache.pekko.http.DefaultParsingErrorHandler;
import org.apache.pekko.http.ParsingErrorHandler;
import org.apache.pekko.http.javadsl.model.HttpResponse;
import org.apache.pekko.http.scaladsl.model.ErrorInfo;
import org.apache.pekko.http.scaladsl.model.StatusCode;
import org.apache.pekko.http.scaladsl.settings.ServerSettings;

/**
 * The answer to a request the HTTP layer refuses before any route sees it (a URI too long 414, a header
 * section too large 431, a malformed request line or header 400, an unknown method 501, an HTTP version
 * other than 1.x 505): pekko-http's own answer, logged as it logs it, in the JSON error shape of the
 * server's other refusals ({@link ErrorResponses#asJsonError}), its status kept, and counted by status in the
 * refusing server's {@code /metrics} ({@code troupe_serve_http_refused_total}). pekko-http creates it by
 * name ({@code pekko.http.server.parsing.error-handler}, which {@link InferenceServer} sets); the server's
 * metrics reach it with the HTTP layer's log ({@link HttpLayerLog}).
 */
final class JsonParsingErrorHandler extends ParsingErrorHandler {
    /** The no-argument constructor pekko-http calls. */
    JsonParsingErrorHandler() {
    }

    @Override
    public HttpResponse handle(StatusCode status, ErrorInfo error, LoggingAdapter log, ServerSettings settings) {
        if (log instanceof HttpLayerLog serverLog) {
            serverLog.metrics().onRefusedByHttp(status.intValue());
        }
        return ErrorResponses.asJsonError(DefaultParsingErrorHandler.handle(status, error, log, settings));
    }
}
