package io.troupe.runtime.transport;

import org.agrona.collections.IntHashSet;
import org.agrona.collections.Long2ObjectHashMap;

/**
 * The receivers and {@link LocalCopyLink}s of one {@link TransportNode}, so senders can tell that a
 * same-node peer lives in this JVM and receivers can find a link by (stream id, session id).
 * Lookups are synchronized (uncontended, allocation-free); receivers cache what they find.
 */
final class LocalCopyRegistry {
    private final IntHashSet localStreams = new IntHashSet();
    private final Long2ObjectHashMap<LocalCopyLink> links = new Long2ObjectHashMap<>();

    private static long key(int streamId, int sessionId) {
        return ((long) streamId << 32) | (sessionId & 0xFFFF_FFFFL);
    }

    synchronized void addReceiver(int streamId) {
        localStreams.add(streamId);
    }

    synchronized void removeReceiver(int streamId) {
        localStreams.remove(streamId);
    }

    synchronized boolean hasReceiver(int streamId) {
        return localStreams.contains(streamId);
    }

    synchronized LocalCopyLink register(int streamId, int sessionId) {
        LocalCopyLink link = new LocalCopyLink();
        links.put(key(streamId, sessionId), link);
        return link;
    }

    synchronized void unregister(int streamId, int sessionId, LocalCopyLink link) {
        if (links.get(key(streamId, sessionId)) == link) {
            links.remove(key(streamId, sessionId));
        }
    }

    synchronized LocalCopyLink find(int streamId, int sessionId) {
        return links.get(key(streamId, sessionId));
    }
}
