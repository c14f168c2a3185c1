package io.troupe.actors.serve;

import io.troupe.models.infer.Generation;
import io.troupe.models.infer.GenerationListener;

/**
 * A {@link GenerationListener} that also hears a generation ended unserved: the server cannot serve it (a pipeline
 * whose stages refuse each other's frames), so it is answered with an error naming the reason rather than as a
 * finished completion.
 */
interface FailingListener extends GenerationListener {
    /** The generation ended unserved for {@code reason}; its blocks are already free. Called once, not onFinish. */
    void onFailed(Generation generation, String reason);
}
