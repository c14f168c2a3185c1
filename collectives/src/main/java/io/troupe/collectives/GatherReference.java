package io.troupe.collectives;

import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.transport.ReceiveSlot;
import org.agrona.UnsafeApi;

/**
 * The simple reference all-reduce the fast algorithms are tested against: every member sends its
 * whole vector to member 0 (step 0), member 0 sums each element in double in member order
 * {@code 0, 1, ..., n-1}, rounds once to float (dividing by n for an average), and sends the result
 * to everyone (step 1). Slow and memory-hungry by design; float32 only. Agent thread only.
 */
final class GatherReference {
    private final ReceiveSlot[] slots = new ReceiveSlot[CollectiveGroup.MAX_SIZE];
    private CollectiveEngine comm;
    private long base;
    private long count;
    private boolean average;
    private int n;
    private int me;
    private int received;
    private int nextSend;
    private boolean reduced;

    void start(CollectiveEngine c, long base, long count, boolean average) {
        this.comm = c;
        this.base = base;
        this.count = count;
        this.average = average;
        this.n = c.size();
        this.me = c.myIndex();
        this.received = 0;
        this.reduced = false;
        this.nextSend = me == 0 ? 1 : -1;
    }

    boolean isDone() {
        if (me == 0) {
            return reduced && nextSend == n && allSent();
        }
        return reduced;
    }

    private boolean allSent() {
        for (int i = 1; i < n; i++) {
            if (!comm.sendDone(i)) {
                return false;
            }
        }
        return true;
    }

    int waitingFor() {
        if (me != 0) {
            return 0;
        }
        for (int i = 1; i < n; i++) {
            if (slots[i] == null) {
                return i;
            }
        }
        return -1;
    }

    int doWork() {
        int work = 0;
        if (me != 0) {
            if (nextSend == -1) {
                if (!comm.linkIdle(0)) {
                    return 0;
                }
                comm.send(0, 0, 0, DType.F32, base, count);
                nextSend = 0;
                work++;
            }
            if (!reduced && comm.sendDone(0)) {
                ReceiveSlot slot = comm.receive(0, 1, 0);
                if (slot != null) {
                    comm.checkPiece(slot, count * 4, 0);
                    ReduceKernels.copy(slot.address(), base, count * 4);
                    slot.release();
                    reduced = true;
                    work++;
                }
            }
            return work;
        }
        if (!reduced) {
            for (int i = 1; i < n; i++) {
                if (slots[i] == null) {
                    ReceiveSlot s = comm.receive(i, 0, 0);
                    if (s != null) {
                        comm.checkPiece(s, count * 4, i);
                        slots[i] = s;
                        received++;
                        work++;
                    }
                }
            }
            if (received < n - 1) {
                return work;
            }
            for (long e = 0; e < count; e++) {
                long off = e << 2;
                double sum = UnsafeApi.getFloat(base + off);
                for (int i = 1; i < n; i++) {
                    sum += UnsafeApi.getFloat(slots[i].address() + off);
                }
                UnsafeApi.putFloat(base + off, (float) (average ? sum / n : sum));
            }
            for (int i = 1; i < n; i++) {
                slots[i].release();
                slots[i] = null;
            }
            reduced = true;
            work++;
        }
        while (nextSend < n && comm.linkIdle(nextSend)) {
            comm.send(nextSend, 1, 0, DType.F32, base, count);
            nextSend++;
            work++;
        }
        return work;
    }

    /** Releases slots held when the collective is abandoned. */
    void abandon() {
        for (int i = 0; i < n; i++) {
            if (slots[i] != null) {
                slots[i].release();
                slots[i] = null;
            }
        }
    }
}
