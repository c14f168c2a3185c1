package io.troupe.actors.serve;

import org.apache.pekko.http.javadsl.model.ContentTypes;
import org.apache.pekko.http.javadsl.model.HttpEntity;
import org.apache.pekko.http.javadsl.model.HttpResponse;
import org.apache.pekko.http.javadsl.model.MediaTypes;
import org.apache.pekko.http.javadsl.model.StatusCodes;
import org.apache.pekko.http.javadsl.model.headers.RetryAfter;

/**
 * The server's error answers, in OpenAI's JSON error shape
 * {@code {"error":{"message":...,"type":...,"param":...,"code":...}}}: those of its own refusals (a bad field, a
 * full queue with {@code Retry-After}, nothing that can be served), and the plain-text ones of the routing and HTTP
 * layers rewritten into that shape ({@link #asJsonError}). {@code type} follows the status: 429
 * {@code rate_limit_exceeded}, 503 {@code unavailable}, another 5xx {@code server_error}, a 4xx
 * {@code invalid_request_error}.
 */
final class ErrorResponses {
    private ErrorResponses() {
    }

    /**
     * A plain-text error answer of the routing layer's default rejection and exception handlers, or of the HTTP
     * layer's for a request it cannot parse ({@link JsonParsingErrorHandler}), as
     * {@code {"error":{"message":...,"type":...,"param":null,"code":...}}}, its status and headers ({@code Allow})
     * kept; {@code code} is the status' reason in snake case ({@code not_found}, {@code method_not_allowed}). Any
     * other response passes unchanged.
     */
    static HttpResponse asJsonError(HttpResponse response) {
        int status = response.status().intValue();
        if (status < 400 || !(response.entity() instanceof HttpEntity.Strict strict)
            || !strict.getContentType().mediaType().equals(MediaTypes.TEXT_PLAIN)) {
            return response;
        }
        String message = strict.getData().utf8String();
        String code = response.status().reason().toLowerCase(java.util.Locale.ROOT).replaceAll("[^a-z0-9]+", "_")
            .replaceAll("^_|_$", "");
        return response.withEntity(ContentTypes.APPLICATION_JSON, errorJson(status, null,
            message.isEmpty() ? response.status().reason() : message, code));
    }

    /** The answer to a refused admission (429 for a full queue, 503 when nothing can be served), or null. */
    static HttpResponse refusal(SchedulerActor.SubmitReply reply) {
        if (reply instanceof SchedulerActor.Rejected r) {
            return tooMany(r);
        }
        if (reply instanceof SchedulerActor.Unavailable u) {
            return error(503, null, "the server cannot serve: " + u.reason());
        }
        return null;
    }

    private static HttpResponse tooMany(SchedulerActor.Rejected r) {
        return error(429, null, "the request queue is full; retry after " + r.retryAfterS() + " s")
            .addHeader(RetryAfter.create((long) r.retryAfterS()));
    }

    static HttpResponse error(int status, String param, String message) {
        return error(status, param, message, null);
    }

    static HttpResponse error(int status, String param, String message, String code) {
        return HttpResponse.create().withStatus(StatusCodes.get(status)).withEntity(ContentTypes.APPLICATION_JSON,
            errorJson(status, param, message, code));
    }

    /** The JSON error object of {@code status} (also a stream's error event, {@link StreamEvents#error}). */
    static String errorJson(int status, String param, String message, String code) {
        String type = switch (status) {
            case 429 -> "rate_limit_exceeded";
            case 503 -> "unavailable";
            default -> status >= 500 ? "server_error" : "invalid_request_error";
        };
        return "{\"error\":{\"message\":" + Json.quote(message) + ",\"type\":\"" + type + "\",\"param\":"
            + (param == null ? "null" : Json.quote(param)) + ",\"code\":" + (code == null ? "null" : Json.quote(code))
            + "}}";
    }
}
