package io.troupe.collectives;

import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.transport.ReceiveSlot;

/**
 * Latency-optimal all-reduce: recursive doubling over the largest power of two {@code p <= n}
 * members; the {@code n - p} extra members first hand their vector to member {@code i - p} (step 0)
 * and get the result back at the end (step {@code log2(p) + 1}). {@code 2 + log2 p} message
 * latencies at most, each carrying the whole vector.
 *
 * <p>Determinism: in round {@code k} partners {@code i} and {@code i ^ 2^k} both compute
 * {@code a + b} from the same two vectors, so they hold identical bits after every round, and the
 * grouping (a fixed tree) is the same in every run. With bf16 on the wire each member rounds its
 * vector to bf16 before sending it, so both partners add the same two values; the result is rounded
 * to bf16 at the end, and extras receive exactly those bits.
 *
 * <p>A round's reduction waits until this member's own send of that round is handed to Aeron (it
 * is sent from the buffer or the staging area being overwritten). Agent thread only; allocation-free.
 */
final class RecursiveDoublingAlgorithm {
    private static final int MAX_STEPS = 16;
    private static final int NONE = -1;

    private final int[] sendTo = new int[MAX_STEPS];
    private final int[] recvFrom = new int[MAX_STEPS];
    private final boolean[] recvAdds = new boolean[MAX_STEPS];
    private CollectiveEngine comm;
    private long base;
    private long count;
    private boolean bf16;
    private boolean average;
    private long staging;
    private int steps;
    private int finalStep;
    private int step;
    private boolean sent;
    private boolean received;
    private boolean finalized;

    void start(CollectiveEngine c, long base, long count, boolean bf16, boolean average, long staging) {
        this.comm = c;
        this.base = base;
        this.count = count;
        this.bf16 = bf16;
        this.average = average;
        this.staging = staging;
        int n = c.size();
        int me = c.myIndex();
        int p = Integer.highestOneBit(n);
        int rounds = Integer.numberOfTrailingZeros(p);
        steps = rounds + 2;
        finalStep = rounds + 1; // finalize (average, bf16 rounding) before this step's sends
        for (int s = 0; s < steps; s++) {
            sendTo[s] = NONE;
            recvFrom[s] = NONE;
            recvAdds[s] = false;
        }
        if (me >= p) {
            sendTo[0] = me - p;
            recvFrom[finalStep] = me - p;
        } else {
            if (me < n - p) {
                recvFrom[0] = me + p;
                recvAdds[0] = true;
                sendTo[finalStep] = me + p;
            }
            for (int k = 0; k < rounds; k++) {
                sendTo[1 + k] = me ^ (1 << k);
                recvFrom[1 + k] = me ^ (1 << k);
                recvAdds[1 + k] = true;
            }
        }
        step = 0;
        sent = false;
        received = false;
        finalized = me >= p;
    }

    boolean isDone() {
        return step >= steps;
    }

    int waitingFor() {
        return step < steps && recvFrom[step] != NONE ? recvFrom[step] : (step < steps ? sendTo[step] : NONE);
    }

    int doWork() {
        int work = 0;
        while (step < steps) {
            if (step == finalStep && !finalized) {
                if (average) {
                    comm.kernels().divide(base, count, comm.size());
                }
                if (bf16) {
                    comm.kernels().roundBf16(base, count);
                }
                finalized = true;
            }
            int to = sendTo[step];
            if (!sent) {
                if (to != NONE) {
                    if (!comm.linkIdle(to)) {
                        return work;
                    }
                    send(to);
                    work++;
                }
                sent = true;
            }
            int from = recvFrom[step];
            if (!received && from != NONE) {
                if (to != NONE && !comm.sendDone(to)) {
                    return work;
                }
                ReceiveSlot slot = comm.receive(from, step, 0);
                if (slot == null) {
                    return work;
                }
                comm.checkPiece(slot, count * (bf16 ? 2 : 4), from);
                if (bf16) {
                    if (recvAdds[step]) {
                        comm.kernels().decodeBf16(slot.address(), base, count, true);
                    } else {
                        comm.kernels().decodeBf16(slot.address(), base, count, false);
                    }
                } else if (recvAdds[step]) {
                    comm.kernels().addInto(base, slot.address(), count);
                } else {
                    ReduceKernels.copy(slot.address(), base, count * 4);
                }
                slot.release();
                work++;
            }
            received = true;
            if (to != NONE && !comm.sendDone(to)) {
                return work;
            }
            step++;
            sent = false;
            received = false;
        }
        return work;
    }

    private void send(int to) {
        if (bf16) {
            if (step > 0 || recvFrom[finalStep] != NONE) {
                comm.kernels().roundBf16(base, count);
            }
            comm.kernels().encodeBf16(base, staging, count);
            comm.send(to, step, 0, DType.BF16, staging, count);
        } else {
            comm.send(to, step, 0, DType.F32, base, count);
        }
    }
}
