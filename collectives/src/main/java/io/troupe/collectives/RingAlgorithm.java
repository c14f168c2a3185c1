package io.troupe.collectives;

import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.transport.ReceiveSlot;

/**
 * Chunked, pipelined ring over the group order: reduce-scatter (steps {@code 0..n-2}) then
 * all-gather (steps {@code n-1..2n-3}); either half alone gives reduce-scatter or all-gather.
 *
 * <p>Segments: the buffer of {@code count} elements is split into {@code n} segments, segment
 * {@code k} = {@code [k*count/n, (k+1)*count/n)}; member {@code r} owns segment {@code r}. At
 * reduce-scatter step {@code j} member {@code r} sends segment {@code r-j-1} to {@code r+1} and adds
 * segment {@code r-j-2} from {@code r-1}; at all-gather step {@code t} it sends {@code r-t} and copies
 * {@code r-t-1} (indices mod n). Segment {@code k} is therefore summed in the fixed order
 * {@code k+1, k+2, ..., k} (member indices mod n) and every member ends with its owner's bytes: the
 * result is bitwise repeatable and bitwise identical on all members.
 *
 * <p>Each segment moves in pieces of {@code pipelineBytes}; piece {@code p} of step {@code j+1} is
 * sent as soon as piece {@code p} of step {@code j} is reduced, so reduction overlaps the transfer.
 * An empty segment still moves as one 1-element piece, so both sides agree on the messages.
 *
 * <p>Receiving: a float32 piece is normally reduced (or, in the all-gather, copied) straight from the
 * Aeron term buffer as its fragments arrive ({@link #acceptInPlace}, called when the receiver sees
 * the piece this ring waits for next); pieces that arrived earlier, or come in any other way, are
 * taken from receive slots by {@link #doWork} (the reference path). Both apply the same elementwise
 * operations in the same order, so the result is bitwise the same either way. When the piece is the
 * next one to send and the right neighbour is reached through a shared-memory ring (another process
 * on the host), an all-reduce writes it straight into that ring as it is reduced or copied
 * ({@link #forwardsNext}): one pass over the piece instead of two, the same sums.
 *
 * <p>Wire: float32 (sent from the buffer itself), bf16 (encoded into staging; the owner rounds its
 * segment to bf16 before the all-gather so every member agrees), or raw bytes (all-gather only).
 * Agent thread only; allocation-free.
 */
final class RingAlgorithm {
    private CollectiveEngine comm;
    private int n;
    private int me;
    private int left;
    private int right;
    private long base;
    private long count;
    private RingWire wire;
    private int localBytes;
    private long pieceElems;
    private boolean average;
    private boolean allReduce;
    private int firstStep;
    private int lastStep;
    private long staging;
    private long dummy;

    private int sendStep;
    private int sendPiece;
    private int recvStep;
    private int recvPiece;
    private boolean inPlace;
    /** Where the in-place piece is also written for the right neighbour (its ring), or 0. */
    private long fusedOut;
    private long forwardedPieces;
    private long inPlaceDst;
    private long inPlaceCount;
    private long inPlaceBytes;

    /** Starts the {@code phases} of a ring over {@code count} elements at {@code base}, sending {@code wire}. */
    void start(CollectiveEngine c, RingPhases phases, long base, long count, RingWire wire, boolean average,
        long staging,
               long dummy) {
        this.comm = c;
        this.n = c.size();
        this.me = c.myIndex();
        this.left = (me - 1 + n) % n;
        this.right = (me + 1) % n;
        this.base = base;
        this.count = count;
        this.wire = wire;
        this.localBytes = wire.localBytes;
        this.pieceElems = Math.max(1, c.settings().pipelineBytes() / localBytes);
        this.average = average;
        this.allReduce = phases == RingPhases.ALL_REDUCE;
        this.firstStep = phases.firstStep(n);
        this.lastStep = phases.lastStep(n);
        this.staging = staging;
        this.dummy = dummy;
        this.sendStep = firstStep;
        this.sendPiece = 0;
        this.recvStep = firstStep;
        this.recvPiece = 0;
        this.inPlace = false;
    }

    private long segStart(int k) {
        return Communicator.segmentStart(count, n, k);
    }

    private int mod(int x) {
        return ((x % n) + n) % n;
    }

    private int sendSeg(int j) {
        return j <= n - 2 ? mod(me - j - 1) : mod(me - (j - n + 1));
    }

    private int recvSeg(int j) {
        return j <= n - 2 ? mod(me - j - 2) : mod(me - (j - n + 1) - 1);
    }

    private int pieces(int seg) {
        long len = segStart(seg + 1) - segStart(seg);
        return (int) Math.max(1, (len + pieceElems - 1) / pieceElems);
    }

    boolean isDone() {
        return !inPlace && recvStep > lastStep && sendStep > lastStep && comm.sendDone(right);
    }

    /** Pieces written straight into the right neighbour's ring so far (see {@link #forwardsNext}). */
    long forwardedPieces() {
        return forwardedPieces;
    }

    /** The member index this ring waits for now. */
    int waitingFor() {
        return recvStep <= lastStep ? left : right;
    }

    int doWork() {
        int work = 0;
        boolean progress = true;
        while (progress) {
            progress = false;
            while (recvStep <= lastStep) {
                ReceiveSlot slot = comm.receive(left, recvStep, recvPiece);
                if (slot == null) {
                    break;
                }
                onPiece(slot);
                slot.release();
                if (++recvPiece == pieces(recvSeg(recvStep))) {
                    recvPiece = 0;
                    recvStep++;
                }
                progress = true;
                work++;
            }
            if (sendStep <= lastStep && comm.linkIdle(right) && sendReady()) {
                sendPieceNow();
                if (++sendPiece == pieces(sendSeg(sendStep))) {
                    sendPiece = 0;
                    sendStep++;
                }
                progress = true;
                work++;
            }
        }
        return work;
    }

    /**
     * Whether the piece {@code key} of {@code totalBytes} from rank {@code sourceRank} is the one this
     * ring receives next and can be taken in place; if so, {@link #inPlaceData} and
     * {@link #endInPlace} follow.
     */
    boolean acceptInPlace(int sourceRank, long key, DType dtype, long totalBytes) {
        if (inPlace || wire != RingWire.F32 || dtype != DType.F32 || recvStep > lastStep
            || sourceRank != comm.rankAtIndex(left) || key != comm.pieceKey(recvStep, recvPiece)) {
            return false;
        }
        int seg = recvSeg(recvStep);
        long start = segStart(seg) + recvPiece * pieceElems;
        long len = Math.min(pieceElems, segStart(seg + 1) - start);
        if (len <= 0 || totalBytes != len * 4) {
            return false; // the slot path sends empty segments' placeholders and reports size mismatches
        }
        inPlace = true;
        inPlaceDst = base + start * 4;
        inPlaceCount = len;
        inPlaceBytes = 0;
        fusedOut = 0;
        return true;
    }

    /**
     * True when the piece being received is, unchanged in geometry, the very next piece to send:
     * an all-reduce's partial sum (reduce-scatter before its last step) or a segment the
     * all-gather passes on. Such a piece can be written straight into the right neighbour's ring
     * while it is reduced or copied, instead of being written here and copied there afterwards.
     */
    private boolean forwardsNext() {
        boolean passesOn = recvStep < n - 2 || recvStep >= n - 1 && recvStep < lastStep;
        return allReduce && passesOn && sendStep == recvStep + 1 && sendPiece == recvPiece && comm.linkIdle(right);
    }

    /** One fragment of the in-place piece: reduce-scatter adds it into the buffer, all-gather copies it. */
    void inPlaceData(long address, long offset, int lengthBytes) {
        if (!inPlace || offset + lengthBytes > inPlaceCount * 4) {
            return;
        }
        long dst = inPlaceDst + offset;
        // Only a piece that arrives whole (a ring frame, or a one-fragment message) is forwarded in
        // place: its end follows in the same receiver call, so no other send can take the link
        // (or the reservation) between the claim and the announcement.
        if (offset == 0 && lengthBytes == inPlaceCount * 4 && forwardsNext()) {
            fusedOut = comm.claim(right, lengthBytes);
        }
        if (fusedOut != 0) {
            long out = fusedOut + offset;
            if (recvStep < n - 2) {
                // the partial sum goes only to the right neighbour: this member's copy of the segment
                // is overwritten by the all-gather, so writing it here as well would be wasted traffic
                comm.kernels().addTo(out, dst, address, lengthBytes >> 2);
            } else {
                ReduceKernels.copy(address, dst, lengthBytes);
                ReduceKernels.copy(dst, out, lengthBytes);
            }
        } else if (recvStep < n - 2 || recvStep == n - 2 && !average) {
            comm.kernels().addInto(dst, address, lengthBytes >> 2);
        } else if (recvStep == n - 2) {
            comm.kernels().addIntoAndDivide(dst, address, lengthBytes >> 2, n); // the average's last reduce
        } else {
            ReduceKernels.copy(address, dst, lengthBytes);
        }
        inPlaceBytes += lengthBytes;
    }

    /**
     * The in-place piece ended; returns false if it did not arrive whole (the buffer is then
     * partly reduced and the collective must fail).
     */
    boolean endInPlace(boolean complete) {
        if (!inPlace) {
            return true;
        }
        inPlace = false;
        long out = fusedOut;
        fusedOut = 0;
        if (!complete || inPlaceBytes != inPlaceCount * 4) {
            return false;
        }
        if (out != 0) { // the piece is already in the right neighbour's ring: announce it
            comm.sendClaimed(right, sendStep, sendPiece, DType.F32, inPlaceCount);
            forwardedPieces++;
            if (++sendPiece == pieces(sendSeg(sendStep))) {
                sendPiece = 0;
                sendStep++;
            }
        }
        if (++recvPiece == pieces(recvSeg(recvStep))) {
            recvPiece = 0;
            recvStep++;
        }
        return true;
    }

    /** True while an in-place piece is half received. */
    boolean isReceivingInPlace() {
        return inPlace;
    }

    /** Forgets a half-received in-place piece (the collective failed). */
    void abandonInPlace() {
        inPlace = false;
        fusedOut = 0;
    }

    private boolean sendReady() {
        return sendStep == firstStep || recvStep > sendStep - 1 || (recvStep == sendStep - 1 && recvPiece > sendPiece);
    }

    private void sendPieceNow() {
        int seg = sendSeg(sendStep);
        long start = segStart(seg) + sendPiece * pieceElems;
        long len = Math.min(pieceElems, segStart(seg + 1) - start);
        if (len <= 0) {
            comm.send(right, sendStep, sendPiece, wire == RingWire.BYTES ? DType.I8 : DType.F32, dummy, 1);
        } else if (wire == RingWire.F32) {
            comm.send(right, sendStep, sendPiece, DType.F32, base + start * 4, len);
        } else if (wire == RingWire.BF16) {
            long at = staging + start * 2;
            comm.kernels().encodeBf16(base + start * 4, at, len);
            comm.send(right, sendStep, sendPiece, DType.BF16, at, len);
        } else {
            comm.send(right, sendStep, sendPiece, DType.I8, base + start, len);
        }
    }

    private void onPiece(ReceiveSlot slot) {
        int seg = recvSeg(recvStep);
        long start = segStart(seg) + recvPiece * pieceElems;
        long len = Math.min(pieceElems, segStart(seg + 1) - start);
        if (len <= 0) {
            return;
        }
        comm.checkPiece(slot, wire == RingWire.BF16 ? 2L * len : (long) localBytes * len, left);
        long dst = base + start * localBytes;
        if (recvStep <= n - 2) {
            boolean fusedAverage = wire != RingWire.BF16 && recvStep == n - 2 && average;
            if (wire == RingWire.BF16) {
                comm.kernels().decodeBf16(slot.address(), dst, len, true);
            } else if (fusedAverage) {
                comm.kernels().addIntoAndDivide(dst, slot.address(), len, n);
            } else {
                comm.kernels().addInto(dst, slot.address(), len);
            }
            if (recvStep == n - 2) {
                if (average && !fusedAverage) {
                    comm.kernels().divide(dst, len, n);
                }
                if (allReduce && wire == RingWire.BF16) {
                    comm.kernels().roundBf16(dst, len);
                }
            }
        } else if (wire == RingWire.BF16) {
            comm.kernels().decodeBf16(slot.address(), dst, len, false);
        } else {
            ReduceKernels.copy(slot.address(), dst, len * localBytes);
        }
    }
}
