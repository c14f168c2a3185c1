package io.troupe.models.infer;

import java.util.ArrayList;
import java.util.List;

/**
 * The listener calls a {@link BatchScheduler} makes: at once, or, while deferred, held in the order they
 * happen until they are delivered here or taken out as one task. Not thread-safe: the scheduler's thread.
 */
final class SchedulerEvents {
    /** A listener call held back: {@code onFinish} when {@code finish}, else {@code onToken(token, textDelta)}. */
    private record Event(Generation generation, int token, String textDelta, boolean finish) {
        void make() {
            if (finish) {
                generation.listener().onFinish(generation);
            } else {
                generation.listener().onToken(generation, token, textDelta);
            }
        }
    }

    private final List<Event> held = new ArrayList<>();
    private boolean deferred;

    /** See {@link BatchScheduler#deferEvents}. */
    void defer(boolean defer) {
        if (!defer) {
            deliver();
        }
        deferred = defer;
    }

    /** See {@link BatchScheduler#deliverEvents}. */
    void deliver() {
        int i = 0;
        try {
            for (; i < held.size(); i++) {          // by index: a listener may cause more events
                held.get(i).make();
            }
        } finally {
            held.subList(0, Math.min(held.size(), i + 1)).clear();     // a failed call is not repeated
        }
    }

    /** See {@link BatchScheduler#takeEvents}. */
    Runnable take() {
        if (held.isEmpty()) {
            return null;
        }
        Event[] taken = held.toArray(new Event[0]);
        held.clear();
        return () -> {
            for (Event e : taken) {
                e.make();
            }
        };
    }

    int held() {
        return held.size();
    }

    void token(Generation g, int token, String textDelta) {
        if (deferred) {
            held.add(new Event(g, token, textDelta, false));
        } else {
            g.listener().onToken(g, token, textDelta);
        }
    }

    void finish(Generation g) {
        if (deferred) {
            held.add(new Event(g, 0, "", true));
        } else {
            g.listener().onFinish(g);
        }
    }
}
