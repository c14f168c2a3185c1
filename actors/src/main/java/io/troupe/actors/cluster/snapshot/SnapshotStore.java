package io.troupe.actors.cluster.snapshot;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.function.Predicate;

/**
 * The snapshots of one rank's shard (its own, or a buddy's copies) in two slots. A rank's own
 * capture and a received copy go by retention (never a slot the exchange still needs: the committed
 * snapshot and later ones, see {@link #beginWrite(long, long, Predicate, BooleanSupplier)} and
 * {@link #beginWriteCopy}), so a write cut short (a dead sender) leaves the committed one intact. A
 * slot being sent is pinned and is not written until the send ends.
 *
 * <p>Threading: any thread; one lock orders writes, pins and lookups. A written buffer is touched
 * only by its writer until {@link #complete}.
 */
public final class SnapshotStore {
    private final String name;
    private final SnapshotBuffer[] slots;
    private long sequence;
    /** How long the last {@link #beginWrite(long, long, Predicate, BooleanSupplier)} waited (ns). */
    private long lastWaitNs;

    public SnapshotStore(String name) {
        this(name, SnapshotBuffer.SEGMENT_SHIFT);
    }

    /** A store whose slots are made of segments of {@code 2^segmentShift} bytes (small ones only to test the seams). */
    SnapshotStore(String name, int segmentShift) {
        this.name = name;
        this.slots = new SnapshotBuffer[] {new SnapshotBuffer(segmentShift), new SnapshotBuffer(segmentShift)};
    }

    /**
     * A slot to write a snapshot of {@code lengthBytes} into: never the latest complete one; waits up
     * to {@code timeoutNs} while the other slot is pinned by a send. The retention write with the
     * latest complete slot as the only one kept.
     *
     * @throws SnapshotException when the slot stays pinned past the timeout
     */
    public synchronized SnapshotBuffer beginWrite(long lengthBytes, long timeoutNs) {
        return beginWrite(lengthBytes, timeoutNs, b -> b == latestLocked(), () -> false);
    }

    /**
     * A slot to write a rank's next snapshot into, by retention instead of recency: never a slot
     * {@code live} keeps (the committed snapshot, and those that may still be committed), nor one
     * pinned by a send; of two complete slots holding the same job, rank and step, the older is a
     * duplicate and free. Waits up to {@code timeoutNs} for a slot to free: a commit (told through
     * {@link #wake}) or a send's end.
     *
     * @param ended whether the writer's epoch ended while it waits (checked at every wake-up)
     * @throws SnapshotException when no slot frees in time, naming what is held, or when the epoch ended
     */
    public synchronized SnapshotBuffer beginWrite(long lengthBytes, long timeoutNs, Predicate<SnapshotBuffer> live,
                                                  BooleanSupplier ended) {
        long startNs = System.nanoTime();
        long deadlineNs = startNs + timeoutNs;
        boolean waited = false;
        while (true) {
            if (ended.getAsBoolean()) {
                throw new SnapshotException(name + ": the epoch ended while a snapshot waited for a slot");
            }
            SnapshotBuffer target = null;
            for (SnapshotBuffer b : slots) {
                if (b.pins == 0 && !(b.complete && live.test(b) && !duplicateLocked(b))
                    && (target == null || rankLocked(b) < rankLocked(target))) {
                    target = b;
                }
            }
            if (target != null) {
                lastWaitNs = waited ? System.nanoTime() - startNs : 0;
                target.complete = false;
                target.prepare(lengthBytes);
                return target;
            }
            waited = true;
            long leftNs = deadlineNs - System.nanoTime();
            if (leftNs <= 0) {
                throw new SnapshotException(name + ": no slot to write a snapshot into after "
                    + TimeUnit.NANOSECONDS.toMillis(timeoutNs) + " ms: every slot is still needed or still being sent "
                    + describeLocked());
            }
            try {
                TimeUnit.NANOSECONDS.timedWait(this, leftNs);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new SnapshotException(name + ": interrupted while waiting for a slot to write");
            }
        }
    }

    /**
     * A slot to write a received copy into: by retention as
     * {@link #beginWrite(long, long, Predicate, BooleanSupplier)}, except that a copy is never refused
     * for want of a slot: when {@code live} keeps every slot, by recency (never the latest complete
     * one). Waits up to {@code timeoutNs} while the slot chosen is pinned by a send.
     *
     * @throws SnapshotException when the slot stays pinned past the timeout
     */
    public synchronized SnapshotBuffer beginWriteCopy(long lengthBytes, long timeoutNs,
        Predicate<SnapshotBuffer> live) {
        for (SnapshotBuffer b : slots) {
            if (!b.complete || !live.test(b) || duplicateLocked(b)) {
                return beginWrite(lengthBytes, timeoutNs, live, () -> false);
            }
        }
        return beginWrite(lengthBytes, timeoutNs);
    }

    /** How long the last write by retention waited for a slot (ns; 0: it found one at once). */
    public synchronized long lastWaitNs() {
        return lastWaitNs;
    }

    /** Wakes writers waiting in {@link #beginWrite(long, long, Predicate, BooleanSupplier)}: what is live changed. */
    public synchronized void wake() {
        notifyAll();
    }

    /** Whether a newer complete slot holds the same job, rank and step as complete slot {@code b}. */
    private boolean duplicateLocked(SnapshotBuffer b) {
        for (SnapshotBuffer o : slots) {
            if (o != b && o.complete && o.sequence > b.sequence && o.jobId() == b.jobId() && o.rank() == b.rank()
                && o.step() == b.step()) {
                return true;
            }
        }
        return false;
    }

    /** Preference to be written: an incomplete slot first, then the oldest complete one. */
    private static long rankLocked(SnapshotBuffer b) {
        return b.complete ? b.sequence : Long.MIN_VALUE;
    }

    private List<String> describeLocked() {
        List<String> out = new ArrayList<>(2);
        for (SnapshotBuffer b : slots) {
            out.add(b.complete ? b.describe() + (b.pins > 0 ? " (being sent)" : "") : "an empty slot"
                + (b.pins > 0 ? " (pinned)" : ""));
        }
        return out;
    }

    /** Seals a written slot (its CRC) and makes it the latest complete snapshot. */
    public void complete(SnapshotBuffer b) {
        b.seal();
        completeAsReceived(b);
    }

    /**
     * Makes a slot holding a received copy the latest complete snapshot, its CRC as the sender
     * sealed it (checked when it is restored, not recomputed here).
     */
    public void completeAsReceived(SnapshotBuffer b) {
        synchronized (this) {
            b.complete = true;
            b.sequence = ++sequence;
        }
    }

    /** Gives a slot up unwritten (its write failed); the latest complete one is unchanged. */
    public synchronized void abandon(SnapshotBuffer b) {
        b.complete = false;
    }

    /** The latest complete snapshot, pinned (call {@link #unpin}), or null when there is none. */
    public synchronized SnapshotBuffer pinLatest() {
        SnapshotBuffer b = latestLocked();
        if (b != null) {
            b.pins++;
        }
        return b;
    }

    /** Pins {@code b}, a complete slot of this store (a send of it starts). */
    public synchronized SnapshotBuffer pin(SnapshotBuffer b) {
        if (!holds(b) || !b.complete) {
            throw new IllegalStateException(name + ": only a complete slot of this store can be pinned: "
                + b.describe());
        }
        b.pins++;
        return b;
    }

    /** Whether {@code b} is one of this store's slots. */
    public boolean holds(SnapshotBuffer b) {
        return slots[0] == b || slots[1] == b;
    }

    /** The ranks of job {@code jobId} whose complete snapshots this store holds. */
    public synchronized List<Integer> ranks(int jobId) {
        List<Integer> out = new ArrayList<>(2);
        for (SnapshotBuffer b : slots) {
            if (b.complete && b.jobId() == jobId && !out.contains(b.rank())) {
                out.add(b.rank());
            }
        }
        return out;
    }

    public synchronized void unpin(SnapshotBuffer b) {
        if (b.pins <= 0) {
            throw new IllegalStateException(name + ": unpin of a slot not pinned: " + b.describe());
        }
        b.pins--;
        notifyAll();
    }

    /**
     * The complete snapshot of job {@code jobId}, rank {@code rank} and step {@code step}, its CRC
     * checked, pinned (call {@link #unpin}).
     *
     * @throws SnapshotException naming what the store holds instead, or the CRC mismatch
     */
    public SnapshotBuffer find(int jobId, int rank, long step) {
        List<String> seen = new ArrayList<>();
        SnapshotBuffer found = null;
        String bad = null;
        // every candidate comes pinned: all but the one returned are unpinned, whatever the outcome
        for (SnapshotBuffer b : candidates()) {
            if (found == null && bad == null && b.jobId() == jobId && b.rank() == rank && b.step() == step) {
                bad = b.check(jobId, rank, step);
                if (bad == null) {
                    found = b;
                    continue;
                }
            } else if (found == null && bad == null) {
                seen.add(b.describe());
            }
            unpin(b);
        }
        if (found != null) {
            return found;
        }
        if (bad != null) {
            throw new SnapshotException(name + ": " + bad);
        }
        throw new SnapshotException(name + ": no snapshot of job " + Integer.toHexString(jobId) + " rank " + rank
            + " step " + step + (seen.isEmpty() ? " (the store is empty)" : " (it holds " + seen + ")"));
    }

    /** The complete slots, newest first, each pinned. */
    private synchronized List<SnapshotBuffer> candidates() {
        List<SnapshotBuffer> out = new ArrayList<>(2);
        for (SnapshotBuffer b : slots) {
            if (b.complete) {
                b.pins++;
                out.add(b);
            }
        }
        out.sort((x, y) -> Long.compare(y.sequence, x.sequence));
        return out;
    }

    /** The steps of the complete snapshots held (newest first) of job {@code jobId} and rank {@code rank}. */
    public synchronized List<Long> steps(int jobId, int rank) {
        List<SnapshotBuffer> complete = new ArrayList<>(2);
        for (SnapshotBuffer b : slots) {
            if (b.complete && b.jobId() == jobId && b.rank() == rank) {
                complete.add(b);
            }
        }
        complete.sort((x, y) -> Long.compare(y.sequence, x.sequence));
        List<Long> out = new ArrayList<>(2);
        for (SnapshotBuffer b : complete) {
            out.add(b.step());
        }
        return out;
    }

    /** Direct memory this store's slots hold now (their capacity, whatever they contain): they never shrink. */
    public synchronized long heldBytes() {
        long held = 0;
        for (SnapshotBuffer b : slots) {
            held += b.capacityBytes();
        }
        return held;
    }

    /** The complete snapshots held, described, newest first. */
    public synchronized List<String> describe() {
        List<String> out = new ArrayList<>(2);
        for (SnapshotBuffer b : slots) {
            if (b.complete) {
                out.add(b.describe());
            }
        }
        return out;
    }

    private SnapshotBuffer latestLocked() {
        SnapshotBuffer best = null;
        for (SnapshotBuffer b : slots) {
            if (b.complete && (best == null || b.sequence > best.sequence)) {
                best = b;
            }
        }
        return best;
    }

    @Override
    public String toString() {
        return name;
    }
}
