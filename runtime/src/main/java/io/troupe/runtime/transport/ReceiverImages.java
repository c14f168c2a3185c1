package io.troupe.runtime.transport;

import io.aeron.Image;
import io.aeron.logbuffer.Header;
import org.agrona.collections.Long2ObjectHashMap;
import org.agrona.concurrent.ManyToOneConcurrentArrayQueue;

/**
 * A {@link TensorReceiverAgent}'s images: the {@link ImageState} of each, found from a fragment's
 * header (the last one cached, so a run of fragments from one image costs no lookup), and the
 * images coming and going, queued by the client conductor and drained on the agent thread.
 */
final class ReceiverImages {
    /** Told on the agent thread of images coming and going. */
    interface Handler {
        /** An image of {@code rank} appeared; {@code current}: of this epoch or a later one. */
        void onImageAvailable(int rank, String sourceIdentity, boolean current);

        /**
         * An image of {@code rank} went away, with the state it had ({@code null} if no fragment
         * came); {@code epochBits} as its session id carries them.
         */
        void onImageLost(ImageState state, int rank, int epochBits, boolean current);
    }

    private record ImageEvent(boolean available, int sessionId, long correlationId, String sourceIdentity) {
    }

    private final String roleName;
    private final ReceiverCounters counters;
    private final Long2ObjectHashMap<ImageState> images = new Long2ObjectHashMap<>();
    private final ManyToOneConcurrentArrayQueue<ImageEvent> events = new ManyToOneConcurrentArrayQueue<>(1024);
    private PeerTraffic traffic;
    private java.util.function.IntSupplier ownerRank;
    private Object lastImage;
    private ImageState lastState;

    ReceiverImages(String roleName, ReceiverCounters counters) {
        this.roleName = roleName;
        this.counters = counters;
    }

    /** The state of the image a fragment came from, created on its first fragment. Agent thread. */
    ImageState stateFor(Header header) {
        Object image = header.context();
        if (image == lastImage && lastState != null) {
            return lastState;
        }
        long id = image instanceof Image ? ((Image) image).correlationId() : header.sessionId();
        ImageState st = images.get(id);
        if (st == null) {
            st = new ImageState(id, SessionIds.rankOf(header.sessionId())); // once per image
            if (traffic != null) {
                st.receivedBytes = traffic.receivedFrom(ownerRank.getAsInt(), st.rank);
            }
            images.put(id, st);
        }
        lastImage = image;
        lastState = st;
        return st;
    }

    /** Counts the bytes accepted from each image under (the receiver's rank then, the image's rank). Set-up time. */
    void countInto(PeerTraffic peerTraffic, java.util.function.IntSupplier receiverRank) {
        this.traffic = peerTraffic;
        this.ownerRank = receiverRank;
    }

    /** Client conductor thread: an image appeared. */
    void onAvailableImage(Image image) {
        offer(new ImageEvent(true, image.sessionId(), image.correlationId(), image.sourceIdentity()));
    }

    /** Client conductor thread: an image went away. */
    void onUnavailableImage(Image image) {
        offer(new ImageEvent(false, image.sessionId(), image.correlationId(), image.sourceIdentity()));
    }

    private void offer(ImageEvent event) {
        if (!events.offer(event)) {
            counters.report(new IllegalStateException("image event queue full: " + roleName));
        }
    }

    /**
     * Tells {@code handler} of the images that came and went since the last call, forgetting the
     * state of those gone. An image of an older epoch (a finished or re-planned job's publication)
     * is not {@code current}: it says nothing about the peer in {@code epoch}. Agent thread.
     */
    int drainEvents(long epoch, Handler handler) {
        int n = 0;
        ImageEvent ev;
        while ((ev = events.poll()) != null) {
            n++;
            int rank = SessionIds.rankOf(ev.sessionId());
            boolean current = SessionIds.isCurrentOrLater(ev.sessionId(), epoch);
            if (ev.available()) {
                handler.onImageAvailable(rank, ev.sourceIdentity(), current);
            } else {
                ImageState st = images.remove(ev.correlationId());
                lastImage = null;
                lastState = null;
                handler.onImageLost(st, rank, SessionIds.epochBitsOf(ev.sessionId()), current);
            }
        }
        return n;
    }

    /** Unmaps every image's ring (at close). */
    void closeRings() {
        for (ImageState st : images.values()) {
            st.closeRing();
        }
    }
}
