package io.troupe.runtime.transport;

import io.aeron.logbuffer.Header;

/**
 * Where a frame's bytes are when they are not in the frame: a same-JVM sender's published tensor
 * ({@link LocalCopyLink}, by-reference frames) or a same-host sender's {@link IpcRing} (by-ring
 * frames). Finds each image's link or ring once, checks that a frame names bytes the sender
 * really published, and hands back what a refused frame names. Agent thread only.
 */
final class SameHostSources {
    private final LocalCopyRegistry localLinks;
    private final String ringDir;
    /** Whether the subscription being polled is IPC (rings are same-host only). */
    private boolean ipc;

    /**
     * @param localLinks the node's in-process links ({@code null}: by-reference frames are refused)
     * @param ringDir    where same-host senders keep their rings ({@code null}: by-ring frames are refused)
     */
    SameHostSources(LocalCopyRegistry localLinks, String ringDir) {
        this.localLinks = localLinks;
        this.ringDir = ringDir;
    }

    /** Sets whether the subscription polled next is IPC. */
    void polling(boolean ipcSubscription) {
        this.ipc = ipcSubscription;
    }

    /**
     * Hands back, unread, what a well-formed frame the receiver refuses (a stale epoch, say) points at: the
     * ring bytes it names, or the same-JVM sender's published tensor. Either was the sender's to reuse once
     * the frame was read, used or not. Bounds and sequence are checked as for a frame that is used; a frame
     * naming bytes outside the ring, or a sequence not published, hands back nothing.
     */
    void releaseRefused(ImageState st, Header header, TensorFrameDecoder d) {
        int reference = d.frame().referenceSequence();
        if (d.byRing()) {
            IpcRing ring = ringHolding(st, header, reference, d.chunkBytes());
            if (ring != null) {
                ring.consumedTo(ring.startOf(reference) + d.chunkBytes());
            }
        } else {
            LocalCopyLink link = publishedLink(st, header, reference, d.totalBytes());
            if (link != null) {
                link.decline(reference);
            }
        }
    }

    /** The image's ring if this is IPC, its sender has one and {@code [offset, offset+bytes)} lies in it; else null. */
    IpcRing ringHolding(ImageState st, Header header, int offset, int bytes) {
        IpcRing ring = ipc ? ringFor(st, header) : null;
        return ring != null && ring.holds(offset, bytes) ? ring : null;
    }

    /** The image's in-process link if it has {@code sequence} published for exactly {@code totalBytes}; else null. */
    LocalCopyLink publishedLink(ImageState st, Header header, int sequence, long totalBytes) {
        LocalCopyLink link = linkFor(st, header);
        return link != null && link.isPublished(sequence, totalBytes) ? link : null;
    }

    /** The in-process link of the image's sender, cached once found (see {@link LocalCopyLink}). */
    private LocalCopyLink linkFor(ImageState st, Header header) {
        LocalCopyLink link = st.link;
        if (link == null && localLinks != null) {
            link = localLinks.find(header.streamId(), header.sessionId());
            st.link = link;
        }
        return link;
    }

    /** The ring of the image's sender (another process on this host), mapped once found (see {@link IpcRing}). */
    private IpcRing ringFor(ImageState st, Header header) {
        IpcRing ring = st.ring;
        if (ring == null && !st.ringMissing && ringDir != null) {
            ring = IpcRing.open(ringDir, header.streamId(), header.sessionId());
            st.ring = ring;
            st.ringMissing = ring == null; // looked up once per image, not once per (forged) frame
        }
        return ring;
    }
}
