package io.troupe.runtime.transport;

import io.aeron.logbuffer.ControlledFragmentHandler;
import io.aeron.logbuffer.FrameDescriptor;
import io.aeron.logbuffer.Header;
import org.agrona.DirectBuffer;

/**
 * Takes a {@link TensorReceiverAgent}'s fragments: decides on each message's first fragment whether
 * it is accepted ({@link #admit}, the one place), finds where its bytes are (the frame, a same-JVM
 * link, a same-host ring), and hands it to {@link InPlaceDelivery} or {@link SlotReassembler}; later
 * fragments follow the message they belong to, and an orphan is counted. Agent thread only.
 */
final class TensorFrameAdapter implements ControlledFragmentHandler {
    private final TensorReceiverAgent agent;
    private final ReceiverImages images;
    private final SameHostSources sources;
    private final SlotReassembler reassembler;
    private final InPlaceDelivery inPlace;
    private final ReplayGuard replays;
    private final ReceiverCounters counters;
    private final long budgetBytes;
    /** The decoder and CRC rule of the subscription being polled now. */
    private TensorFrameDecoder decoder;
    private boolean crcEnabled;

    TensorFrameAdapter(TensorReceiverAgent agent, ReceiverImages images, SameHostSources sources,
                       SlotReassembler reassembler, InPlaceDelivery inPlace, ReplayGuard replays,
                       ReceiverCounters counters) {
        this.agent = agent;
        this.images = images;
        this.sources = sources;
        this.reassembler = reassembler;
        this.inPlace = inPlace;
        this.replays = replays;
        this.counters = counters;
        this.budgetBytes = agent.pool().budgetBytes();
    }

    /** Sets the decoder and CRC rule of the subscription polled next. */
    void polling(TensorFrameDecoder decoderThere, boolean crcEnabledThere) {
        this.decoder = decoderThere;
        this.crcEnabled = crcEnabledThere;
    }

    /**
     * Every handled message's last fragment commits the image position ({@code COMMIT}) instead of
     * letting it wait for the end of the poll: a poll may take up to {@link TensorReceiverAgent#FRAGMENT_LIMIT}
     * fragments (megabytes reduced in place), and the sender's flow-control window only moves with
     * this position.
     */
    @Override
    public Action onFragment(DirectBuffer buffer, int offset, int length, Header header) {
        Action action = handleFragment(buffer, offset, length, header);
        return action == Action.CONTINUE && (header.flags() & FrameDescriptor.END_FRAG_FLAG) != 0 ? Action.COMMIT
            : action;
    }

    private Action handleFragment(DirectBuffer buffer, int offset, int length, Header header) {
        ImageState st = images.stateFor(header);
        byte flags = header.flags();
        boolean end = (flags & FrameDescriptor.END_FRAG_FLAG) != 0;
        if ((flags & FrameDescriptor.BEGIN_FRAG_FLAG) != 0) {
            if (st.inMessage) {
                abandon(st, DropReason.ORPHAN_FRAGMENT, false);
            }
            st.skipping = false;
            return onFirstFragment(st, buffer, offset, length, end, header);
        }
        if (!st.inMessage) {
            if (!st.skipping) {
                counters.drops.increment(DropReason.ORPHAN_FRAGMENT);
            }
            st.skipping = !end;
            return Action.CONTINUE;
        }
        if (st.sink != null) {
            inPlace.continuation(st, buffer, offset, length, end);
        } else {
            reassembler.continuation(st, buffer, offset, length, end);
        }
        return Action.CONTINUE;
    }

    /** Drops the message in progress on an image: an in-place tensor or the slot it was filling. */
    private void abandon(ImageState st, DropReason reason, boolean end) {
        if (st.sink != null) {
            inPlace.abandon(st, reason, end);
        } else {
            reassembler.abandon(st, reason, end);
        }
    }

    /**
     * Whether a message is accepted: decodes and checks its first fragment (layout, CRC or tag, that it is
     * for this worker, of its job and epoch, from the image's sender, within the budget, not taken before).
     * Null: accepted; otherwise why it is refused. The one place a delivery is accepted or refused.
     */
    private DropReason admit(ImageState st, TensorFrameDecoder d, DirectBuffer buffer, int offset, int length,
                             boolean end) {
        DropReason refused = d.decode(buffer, offset, length, end, agent.jobId(), agent.epoch(), agent.ownerRank(),
            st.rank, budgetBytes);
        if (refused == null && d.mac() != null
            && !replays.fresh(d.jobId(), d.epoch(), st.rank, d.frame().frameCounter())) {
            return DropReason.REPLAYED; // a chunk of many fragments is judged again once whole (SlotReassembler)
        }
        return refused;
    }

    private Action onFirstFragment(ImageState st, DirectBuffer buffer, int offset, int length, boolean end,
                                   Header header) {
        TensorFrameDecoder d = decoder;
        DropReason refused = admit(st, d, buffer, offset, length, end);
        if (refused != null && refused.damaged() && st.macProven && d.checksTags()
            && !(refused == DropReason.BAD_MAC && d.kind() == FrameKind.HELLO)) {
            // a key holder's frame damaged on the way (its image passed a tag before): whoever waits for it may
            // fail now rather than at its step timeout; its kind and key only when its tag was what failed (the
            // fields before it were read whole), else unknown (null)
            boolean fieldsRead = refused == DropReason.BAD_MAC;
            reassembler.reportDamaged(st.rank, fieldsRead ? d.kind() : null, fieldsRead ? d.frame().tensorKey() : 0,
                refused);
        } else if (refused == null && end && d.checksTags()) {
            st.macProven = true; // a whole tagged frame passed: this image is a key holder's publication
        }
        if (refused != null) {
            if (refused.wellFormed() && (d.byRing() || d.byReference())) {
                sources.releaseRefused(st, header, d); // a stale epoch's sender must not wait out its deadline
            }
            return st.drop(counters.drops, refused, end);
        }
        if (d.kind() == FrameKind.HELLO) { // proof of the publication (above), never delivered
            if (d.mac() != null) {
                replays.accept(d.jobId(), d.epoch(), st.rank, d.frame().frameCounter());
            }
            st.skipping = !end;
            return Action.CONTINUE;
        }
        Action action = deliver(st, d, buffer, offset, end, header);
        if (end && action != Action.ABORT && d.mac() != null) { // taken, its tag checked: never taken again
            replays.accept(d.jobId(), d.epoch(), st.rank, d.frame().frameCounter());
        }
        return action;
    }

    /** Hands an accepted message to the sink or slot that takes it ({@code ABORT}: offered again later). */
    private Action deliver(ImageState st, TensorFrameDecoder d, DirectBuffer buffer, int offset, boolean end,
                           Header header) {
        TensorFrameFlyweight f = d.frame();
        int chunkBytes = d.chunkBytes();
        LocalCopyLink link = null;
        if (d.byReference()) {
            link = d.byRing() || d.chunkOffset() != 0 ? null
                : sources.publishedLink(st, header, f.referenceSequence(), d.totalBytes());
            if (link == null) {
                return st.drop(counters.drops, DropReason.BAD_REFERENCE, end);
            }
        }
        IpcRing ring = null;
        long ringAddress = 0;
        long ringEnd = 0;
        if (d.byRing()) {
            int ringOffset = f.referenceSequence();
            ring = sources.ringHolding(st, header, ringOffset, chunkBytes);
            if (ring == null) {
                return st.drop(counters.drops, DropReason.BAD_REFERENCE, end);
            }
            ringAddress = ring.address(ringOffset);
            ringEnd = ring.startOf(ringOffset) + chunkBytes;
        }
        if (link == null && inPlace.mayOffer(d, buffer, end, crcEnabled)) {
            InPlaceConsumer.Sink sink = inPlace.offer(st.rank, d);
            if (sink == InPlaceConsumer.LATER) {
                return Action.ABORT; // nothing of this message is consumed: offered again on a later poll
            }
            if (sink != null) {
                if (ring != null) {
                    inPlace.deliverFromRing(st, sink, ringAddress, chunkBytes);
                    ring.consumedTo(ringEnd);
                    return Action.CONTINUE;
                }
                inPlace.first(st, sink, buffer, offset, d.payloadBytes(), chunkBytes, end);
                return Action.CONTINUE;
            }
        }
        Action action = reassembler.place(st, d, buffer, offset, end, link, ringAddress);
        if (ring != null && action != Action.ABORT) {
            ring.consumedTo(ringEnd); // used or dropped: either way the sender may reuse the bytes
        }
        return action;
    }
}
