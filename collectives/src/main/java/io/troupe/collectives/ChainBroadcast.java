package io.troupe.collectives;

import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.transport.ReceiveSlot;

/**
 * Pipelined chain broadcast along the group order starting at the root: member at chain position
 * {@code q = (i - root) mod n} receives each piece from {@code i - 1} and forwards it to
 * {@code i + 1} as soon as it has it. Bytes are copied exactly, so every member ends with the root's
 * bits. Agent thread only; allocation-free.
 */
final class ChainBroadcast {
    private CollectiveEngine comm;
    private long base;
    private long count;
    private long pieceElems;
    private int pieces;
    private int prev;
    private int next;
    private int sendPiece;
    private int recvPiece;

    void start(CollectiveEngine c, long base, long count, int root) {
        this.comm = c;
        this.base = base;
        this.count = count;
        int n = c.size();
        int me = c.myIndex();
        int q = ((me - root) % n + n) % n;
        this.pieceElems = Math.max(1, c.settings().pipelineBytes() / 4);
        this.pieces = (int) Math.max(1, (count + pieceElems - 1) / pieceElems);
        this.prev = q == 0 ? -1 : (me - 1 + n) % n;
        this.next = q == n - 1 ? -1 : (me + 1) % n;
        this.sendPiece = next < 0 ? pieces : 0;
        this.recvPiece = prev < 0 ? pieces : 0;
    }

    boolean isDone() {
        return recvPiece == pieces && sendPiece == pieces && (next < 0 || comm.sendDone(next));
    }

    int waitingFor() {
        return recvPiece < pieces ? prev : next;
    }

    int doWork() {
        int work = 0;
        boolean progress = true;
        while (progress) {
            progress = false;
            if (recvPiece < pieces) {
                ReceiveSlot slot = comm.receive(prev, 0, recvPiece);
                if (slot != null) {
                    long start = recvPiece * pieceElems;
                    long len = Math.min(pieceElems, count - start);
                    comm.checkPiece(slot, len * 4, prev);
                    ReduceKernels.copy(slot.address(), base + start * 4, len * 4);
                    slot.release();
                    recvPiece++;
                    progress = true;
                    work++;
                }
            }
            if (sendPiece < pieces && sendPiece < recvPiece && comm.linkIdle(next)) {
                long start = sendPiece * pieceElems;
                comm.send(next, 0, sendPiece, DType.F32, base + start * 4, Math.min(pieceElems, count - start));
                sendPiece++;
                progress = true;
                work++;
            }
        }
        return work;
    }
}
