package io.troupe.runtime.transport;

import static io.aeron.logbuffer.FrameDescriptor.BEGIN_FRAG_FLAG;
import static io.aeron.logbuffer.FrameDescriptor.END_FRAG_FLAG;
import static io.troupe.runtime.transport.TransportTestSupport.RecordingListener;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.aeron.logbuffer.ControlledFragmentHandler.Action;
import io.aeron.logbuffer.Header;
import io.aeron.protocol.DataHeaderFlyweight;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.testkit.LoopbackDriver;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.agrona.BufferUtil;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The counters that keep replayed frames out: a sender's {@link FrameSequence} (rising, above every earlier
 * sender of the process, also when senders on many threads draw blocks at once), the receiver's
 * {@link ReplayGuard} (per source rank and epoch, forgotten with the epoch or the job), and a chunk of many
 * fragments judged again once whole, when another image took the same counter meanwhile.
 */
class ReplayGuardTest {
    private static final FrameAuthKey KEY = FrameAuthKey.ofValue("the cluster's key, sixteen+ bytes");

    @Test
    void shouldTakeEachCounterOncePerSourceRankAndEpoch() {
        ReplayGuard guard = new ReplayGuard();
        assertFalse(guard.fresh(7, 3, 0, 0), "counter 0 is never sent");
        assertTrue(guard.fresh(7, 3, 0, 5));
        guard.accept(7, 3, 0, 5);
        assertFalse(guard.fresh(7, 3, 0, 5), "the same counter again");
        assertFalse(guard.fresh(7, 3, 0, 4), "an older counter");
        assertTrue(guard.fresh(7, 3, 0, 6));
        assertTrue(guard.fresh(7, 3, 1, 5), "another source rank is another sender");
        assertTrue(guard.fresh(7, 4, 0, 5), "another epoch is another sender");
        guard.accept(7, 4, 0, 9);
        guard.forgetOlderThan(4);
        assertEquals(1, guard.size(), "epoch 3 forgotten, epoch 4 kept");
        assertFalse(guard.fresh(7, 4, 0, 9));
        assertTrue(guard.fresh(8, 4, 0, 1), "another job's senders start afresh");
        guard.accept(8, 4, 0, 1);
        assertEquals(1, guard.size(), "the last job's senders are forgotten");
        guard.accept(8, SessionIds.EPOCH_MASK + 9L, SessionIds.MAX_RANK, 2);
        assertFalse(guard.fresh(8, SessionIds.EPOCH_MASK + 9L, SessionIds.MAX_RANK, 2));
        assertTrue(guard.fresh(8, 9, SessionIds.MAX_RANK, 2), "epochs are not kept mod the session's 10 bits");
    }

    @Test
    void shouldRiseAboveEverySequenceTakenBefore() {
        AtomicLong blocks = new AtomicLong(1);
        FrameSequence first = new FrameSequence(blocks);
        long last = 0;
        for (long i = 0; i < FrameSequence.BLOCK + 3; i++) { // across a block boundary
            assertTrue(first.current() > last, "at " + i);
            last = first.current();
            first.advance();
        }
        FrameSequence replacing = new FrameSequence(blocks);
        assertTrue(replacing.current() > last, "a new sender starts above the old one: " + replacing.current());

        FrameSequence exhausted = new FrameSequence(new AtomicLong(TensorFrameDescriptor.MAX_FRAME_COUNTER
            - FrameSequence.BLOCK + 1));
        for (long i = 0; i < FrameSequence.BLOCK - 1; i++) {
            exhausted.advance();
        }
        assertEquals(TensorFrameDescriptor.MAX_FRAME_COUNTER, exhausted.current(), "the last counter is used");
        TransportException e = assertThrows(TransportException.class, exhausted::advance);
        assertTrue(e.getMessage().contains("no frame counters left"), e.getMessage());
    }

    @Test
    @Timeout(60)
    void shouldKeepTheSequencesOfConcurrentSendersDisjointAndRising() throws Exception {
        int threads = 4;
        int perThread = 3 * (int) FrameSequence.BLOCK;
        AtomicLong blocks = new AtomicLong(1);
        CountDownLatch start = new CountDownLatch(1);
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        try {
            List<Future<long[]>> taken = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                taken.add(pool.submit(() -> {
                    start.await(10, TimeUnit.SECONDS);
                    long[] counters = new long[perThread];
                    FrameSequence s = new FrameSequence(blocks);
                    for (int i = 0; i < perThread; i++) {
                        counters[i] = s.current();
                        s.advance();
                        if (i % 1000 == 0 && i > 0) { // each new sender on a thread of its own
                            s = new FrameSequence(blocks);
                        }
                    }
                    return counters;
                }));
            }
            start.countDown();
            java.util.BitSet seen = new java.util.BitSet();
            for (Future<long[]> f : taken) {
                long[] counters = f.get(30, TimeUnit.SECONDS);
                for (int i = 0; i < counters.length; i++) {
                    assertTrue(i == 0 || counters[i] > counters[i - 1], "falls at " + i);
                    assertFalse(seen.get((int) counters[i]), "counter " + counters[i] + " taken twice");
                    seen.set((int) counters[i]);
                }
            }
        } finally {
            pool.shutdownNow();
        }
    }

    /**
     * Two images claiming rank 0 carry the same tagged chunk of two fragments, their fragments interleaved: both
     * first fragments pass (nothing was taken yet), the chunk that completes first is delivered, and the other is
     * refused as {@code REPLAYED} when it completes, its tag good, nothing reported corrupt.
     */
    @Test
    @Timeout(60)
    void shouldJudgeAChunkOfManyFragmentsAgainOnceWhole() {
        try (LoopbackDriver driver = LoopbackDriver.start(LoopbackDriver.testSettings().withAuthKey(KEY))) {
            RecordingListener listener = new RecordingListener();
            TensorReceiverAgent agent = driver.openWorker("rx", 1, 3, listener).receiver();
            ReceiverCounters counters = new ReceiverCounters(driver.errors()::add);
            ReplayGuard guard = new ReplayGuard();
            SlotReassembler reassembler = new SlotReassembler(agent.pool(), listener, counters, guard);
            TensorFrameAdapter adapter = new TensorFrameAdapter(agent, new ReceiverImages("rx", counters),
                new SameHostSources(null, null), reassembler, new InPlaceDelivery(counters), guard, counters);
            TensorFrameDecoder decoder = new TensorFrameDecoder(true, KEY);
            adapter.polling(decoder, false);
            reassembler.polling(false, decoder.frame(), decoder.mac());

            int payload = 2000;
            UnsafeBuffer frame = new UnsafeBuffer(BufferUtil.allocateDirectAligned(
                TensorFrameDescriptor.HEADER_LENGTH + payload, 64));
            TensorFrameFlyweight f = new TensorFrameFlyweight().wrap(frame, 0).writeHeader(FrameKind.GRADIENT,
                DType.I8, TensorFrameDescriptor.FLAG_MAC, JobIdentity.NO_JOB, 3, 1, 0, 1, TensorKey.of(1, 0, 0),
                new int[] {payload}, 1, payload, 0, payload);
            f.frameCounter(42);
            for (int i = 0; i < payload; i++) {
                frame.putByte(TensorFrameDescriptor.HEADER_LENGTH + i, (byte) (i * 7));
            }
            new FrameMac(KEY).seal(frame, 0, payload);
            int split = TensorFrameDescriptor.HEADER_LENGTH + 1000;
            int rest = TensorFrameDescriptor.HEADER_LENGTH + payload - split;
            Header a = header(SessionIds.of(0, 3), new Object());
            Header b = header(SessionIds.of(0, 4), new Object());

            assertEquals(Action.CONTINUE, adapter.onFragment(frame, 0, split, flags(a, BEGIN_FRAG_FLAG)));
            assertEquals(Action.CONTINUE, adapter.onFragment(frame, 0, split, flags(b, BEGIN_FRAG_FLAG)));
            assertEquals(Action.COMMIT, adapter.onFragment(frame, split, rest, flags(a, END_FRAG_FLAG)));
            assertEquals(1, listener.ready.size(), "the first whole chunk is delivered: " + counters.drops);
            assertEquals(Action.COMMIT, adapter.onFragment(frame, split, rest, flags(b, END_FRAG_FLAG)));
            assertEquals(1, listener.ready.size(), "the same chunk again was delivered");
            assertEquals(1, counters.drops.count(DropReason.REPLAYED), counters.drops.toString());
            assertEquals(0, counters.drops.count(DropReason.BAD_MAC), counters.drops.toString());
            assertTrue(listener.corrupted.isEmpty(), listener.corrupted.toString());

            assertEquals(Action.CONTINUE, adapter.onFragment(frame, 0, split, flags(b, BEGIN_FRAG_FLAG)));
            assertEquals(2, counters.drops.count(DropReason.REPLAYED), "a third copy is refused on its first fragment");
            listener.ready.poll().release();
        }
    }

    /** An Aeron data header of {@code sessionId} for the fragments of one image ({@code image}). */
    private static Header header(int sessionId, Object image) {
        UnsafeBuffer b = new UnsafeBuffer(new byte[DataHeaderFlyweight.HEADER_LENGTH]);
        b.putInt(DataHeaderFlyweight.SESSION_ID_FIELD_OFFSET, sessionId, java.nio.ByteOrder.LITTLE_ENDIAN);
        return new Header(0, 16, image).buffer(b).offset(0);
    }

    private static Header flags(Header h, byte flags) {
        ((UnsafeBuffer) h.buffer()).putByte(DataHeaderFlyweight.FLAGS_FIELD_OFFSET, flags);
        return h;
    }
}
