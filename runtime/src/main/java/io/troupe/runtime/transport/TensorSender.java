package io.troupe.runtime.transport;

import static io.troupe.runtime.transport.TensorFrameDescriptor.HEADER_LENGTH;

import io.aeron.ExclusivePublication;
import io.aeron.Publication;
import io.troupe.runtime.device.DeviceKind;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;
import java.util.Arrays;
import org.agrona.DirectBuffer;
import org.agrona.concurrent.IdleStrategy;

/**
 * Sends tensors from this worker to one peer over one {@link ExclusivePublication}. A tensor is
 * split into chunks of at most {@code chunkBytes}; each chunk is one Aeron message (frame header +
 * payload), claimed in place with {@code tryClaim} when it fits one MTU, else offered from the
 * caller's memory without an intermediate copy. Steady-state sending allocates nothing.
 *
 * <p>Offer results: {@code BACK_PRESSURED} and {@code ADMIN_ACTION} are retried until
 * {@code backPressureTimeoutNs} passes without progress; {@code NOT_CONNECTED} waits up to
 * {@code connectTimeoutNs}; then a {@link TransportTimeoutException}. {@code CLOSED} and
 * {@code MAX_POSITION_EXCEEDED} throw {@link TransportException} at once.
 *
 * <p>Two ways to send: {@link #send} blocks (idling with the given strategy) until every chunk is
 * in the publication; {@link #begin} + {@link #doSend()} make progress without blocking, for duty
 * cycles that must keep receiving while they send (collectives). One tensor at a time.
 *
 * <p>Same-JVM peers: tensors of at least {@code localCopyMinBytes} are not written to the log; a
 * header-only frame lets the receiver copy them straight from the caller's memory
 * ({@link LocalCopyLink}), and the send completes once it has. A blocking {@link #send} of such a
 * tensor therefore needs the receiver's agent running on another thread.
 *
 * <p>Peers in another process on the same host (IPC, no in-process link): chunks of tensors of at
 * least {@code ipcRingMinBytes} go through the publication's {@link IpcRing}; the frame in the log
 * carries only the header. A full ring back-pressures like a full publication.
 *
 * <p>Threading: one thread per sender. The caller's memory must stay unchanged until the send completes.
 */
public final class TensorSender implements AutoCloseable {
    /** Largest tensor sent by reference (chunk bytes is an int32 on the wire); larger ones use the log. */
    private static final int MAX_REFERENCE_BYTES = 1 << 30;
    private final ExclusivePublication publication;
    private final LocalCopyLink localLink;
    private final long localCopyMinBytes;
    private final IpcRing ring;
    private final long ringMinBytes;
    private final int sourceRank;
    private final int destRank;
    private final long epoch;
    private final int jobId;
    private final int chunkBytes;
    private final long connectTimeoutNs;
    private final long backPressureTimeoutNs;
    private final IdleStrategy idleStrategy;
    /** Writes the frames of the tensor in flight. */
    private final TensorFrameWriter frames;
    /** The writer's shape array, filled in place by {@link #send(FrameKind, long, long, Tensor)}. */
    private final int[] shape;
    private Runnable closeAction;
    private PeerTraffic.Counter sentBytesCounter;

    private long totalBytes;
    private long sentBytes;
    private boolean active;
    private boolean byReference;
    private boolean viaRing;
    private long claimedStart = -1;
    private int claimedBytes;
    private boolean awaitingCopy;
    private long waitStartNs;
    private long tensorsSent;
    private long backPressureEvents;
    /** A {@link FrameKind#HELLO} is still to go before the first tensor (an auth key on a UDP publication). */
    private boolean helloPending;

    /**
     * @param publication  an exclusive publication owned by this sender from now on (closed with it)
     * @param idleStrategy used by {@link #send} between retries
     */
    public TensorSender(ExclusivePublication publication, int sourceRank, int destRank, long epoch,
                        TransportSettings settings, IdleStrategy idleStrategy) {
        this(publication, sourceRank, destRank, JobIdentity.NO_JOB, epoch, settings, idleStrategy, null, null);
    }

    /**
     * @param localLink the in-process link to a same-JVM receiver, or {@code null}
     * @param ring      the shared-memory ring to a receiver in another process on this host, or
     *                  {@code null}; owned by this sender from now on (closed with it)
     * @param jobId     the job id every frame carries (with {@code epoch}, the sender's {@link JobIdentity})
     */
    TensorSender(ExclusivePublication publication, int sourceRank, int destRank, int jobId, long epoch,
                 TransportSettings settings, IdleStrategy idleStrategy, LocalCopyLink localLink, IpcRing ring) {
        this.localLink = localLink;
        this.localCopyMinBytes = settings.localCopyMinBytes();
        this.ring = ring;
        this.ringMinBytes = settings.ipcRingMinBytes();
        if (ring != null && ring.capacity() < settings.chunkBytes()) {
            throw new IllegalArgumentException("the IPC ring must hold a chunk: capacity=" + ring.capacity()
                + ", chunkBytes=" + settings.chunkBytes());
        }
        this.publication = publication;
        this.sourceRank = sourceRank;
        this.destRank = destRank;
        this.epoch = epoch;
        this.jobId = jobId;
        this.chunkBytes = settings.chunkBytes();
        boolean ipc = TransportChannels.isIpc(publication.channel());
        FrameAuthKey key = settings.authKeyFor(ipc);
        FrameMac mac = key == null ? null : new FrameMac(key);
        boolean crcEnabled = mac == null && settings.crcEnabledFor(ipc);
        this.connectTimeoutNs = settings.connectTimeoutNs();
        this.backPressureTimeoutNs = settings.backPressureTimeoutNs();
        this.idleStrategy = idleStrategy;
        if (chunkBytes + HEADER_LENGTH > publication.maxMessageLength()) {
            throw new IllegalArgumentException(
                "chunkBytes plus header exceeds the publication's max message: chunkBytes="
                + chunkBytes + ", maxMessageLength=" + publication.maxMessageLength());
        }
        this.frames = new TensorFrameWriter(publication, ring, sourceRank, destRank, jobId, epoch, crcEnabled, mac);
        this.helloPending = mac != null;
        this.shape = frames.shape();
    }

    public int destRank() {
        return destRank;
    }

    public int sourceRank() {
        return sourceRank;
    }

    public long epoch() {
        return epoch;
    }

    /** The job id stamped on every frame. */
    public int jobId() {
        return jobId;
    }

    public ExclusivePublication publication() {
        return publication;
    }

    public boolean isConnected() {
        return publication.isConnected();
    }

    /** Whether {@link #close()} ran (its publication is closed). */
    public boolean isClosed() {
        return publication.isClosed();
    }

    /** Tensors completely handed to Aeron. */
    public long tensorsSent() {
        return tensorsSent;
    }

    /** Offers answered BACK_PRESSURED or ADMIN_ACTION. */
    public long backPressureEvents() {
        return backPressureEvents;
    }

    /** True while a tensor begun with {@link #begin} still has chunks to send. */
    public boolean isSending() {
        return active;
    }

    /**
     * Sends a CPU tensor straight from its memory (no staging copy); blocks until handed to Aeron.
     *
     * @throws IllegalArgumentException for a tensor that is not in host memory, or has more than 4 dims
     */
    public void send(FrameKind kind, long step, long tensorKey, Tensor tensor) {
        if (tensor.device().kind() != DeviceKind.CPU) {
            throw new IllegalArgumentException("only host tensors are sent directly; copy to the CPU first: device="
                + tensor.device().name());
        }
        int n = tensor.rank();
        if (n > TensorFrameDescriptor.MAX_DIMS) {
            throw new IllegalArgumentException("frames carry at most 4 dims: shape=" + Arrays.toString(tensor.shape()));
        }
        for (int i = 0; i < n; i++) {
            shape[i] = tensor.dim(i);
        }
        begin(kind, step, tensorKey, tensor.dtype(), shape, n, tensor.address(), tensor.lengthBytes());
        finish();
    }

    /**
     * Sends {@code shape[0..ndims)} elements of {@code dtype} at native {@code address}; blocks until handed to Aeron.
     */
    public void send(FrameKind kind, long step, long tensorKey, DType dtype, int[] shape, int ndims, long address,
                     long lengthBytes) {
        begin(kind, step, tensorKey, dtype, shape, ndims, address, lengthBytes);
        finish();
    }

    /** Sends {@code lengthBytes} of a direct buffer as a flat tensor of {@code dtype}; blocks. */
    public void send(FrameKind kind, long step, long tensorKey, DType dtype, DirectBuffer buffer, int index,
                     int lengthBytes) {
        if (buffer.byteArray() != null) {
            throw new IllegalArgumentException("send needs off-heap memory: buffer wraps a byte[] of length "
                + buffer.byteArray().length);
        }
        if (index < 0 || lengthBytes <= 0 || (long) index + lengthBytes > buffer.capacity()
            || lengthBytes % dtype.sizeBytes() != 0) {
            throw new IllegalArgumentException("bad region: index=" + index + ", lengthBytes=" + lengthBytes
                + ", capacity=" + buffer.capacity() + ", dtype=" + dtype);
        }
        shape[0] = lengthBytes / dtype.sizeBytes();
        send(kind, step, tensorKey, dtype, shape, 1, buffer.addressOffset() + index, lengthBytes);
    }

    private void finish() {
        while (active) {
            idleStrategy.idle(doSend());
        }
        idleStrategy.reset();
    }

    /**
     * Starts sending a tensor; call {@link #doSend()} until {@link #isSending()} is false.
     *
     * @throws IllegalArgumentException for a bad shape or a length that disagrees with it
     * @throws IllegalStateException    while another tensor is still being sent
     */
    public void begin(FrameKind kind, long step, long tensorKey, DType dtype, int[] shape, int ndims, long address,
                      long lengthBytes) {
        if (active) {
            throw new IllegalStateException("a tensor is still being sent to rank " + destRank);
        }
        if (ndims < 1 || ndims > TensorFrameDescriptor.MAX_DIMS) {
            throw new IllegalArgumentException("ndims must be in [1, 4]: ndims=" + ndims);
        }
        long numel = 1;
        for (int i = 0; i < ndims; i++) {
            if (shape[i] <= 0) {
                throw new IllegalArgumentException("shape dimensions must be positive: shape="
                    + Arrays.toString(Arrays.copyOf(shape, ndims)));
            }
            numel *= shape[i];
        }
        if (numel * dtype.sizeBytes() != lengthBytes || lengthBytes > TensorFrameDescriptor.MAX_TENSOR_BYTES) {
            throw new IllegalArgumentException("lengthBytes must equal numel x dtype size: lengthBytes=" + lengthBytes
                + ", shape=" + Arrays.toString(Arrays.copyOf(shape, ndims)) + ", dtype=" + dtype);
        }
        if (address == 0) {
            throw new IllegalArgumentException("address must be a native address: address=0");
        }
        frames.start(kind, step, tensorKey, dtype, shape, ndims, address, lengthBytes);
        this.totalBytes = lengthBytes;
        this.sentBytes = 0;
        this.waitStartNs = System.nanoTime();
        this.byReference = localLink != null && lengthBytes >= localCopyMinBytes && lengthBytes <= MAX_REFERENCE_BYTES;
        this.viaRing = !byReference && ring != null && lengthBytes >= ringMinBytes;
        this.claimedStart = -1;
        this.awaitingCopy = false;
        if (byReference) {
            frames.referenceSequence(localLink.publish(address, lengthBytes));
        }
        this.active = true;
    }

    /**
     * Reserves {@code lengthBytes} in this sender's {@link IpcRing} for a one-chunk tensor the caller
     * writes itself (e.g. a reduction written straight to where the receiver reads it, saving a
     * copy); returns the address to write to, or 0 when that cannot be done now: no ring (not a
     * same-host peer in another process), a tensor in flight, longer than a chunk, or no room yet.
     * A reservation is sent with {@link #beginClaimed} and holds until then (or until the next
     * {@link #begin}, which drops it).
     */
    public long claimRing(long lengthBytes) {
        if (ring == null || active || lengthBytes <= 0 || lengthBytes > chunkBytes) {
            return 0;
        }
        long start = ring.claim((int) lengthBytes);
        if (start < 0) {
            return 0;
        }
        claimedStart = start;
        claimedBytes = (int) lengthBytes;
        return ring.address(start);
    }

    /**
     * Starts sending the tensor written at the address {@link #claimRing} returned; continue with
     * {@link #doSend()} as after {@link #begin}. Only the header goes into the log.
     *
     * @throws IllegalStateException when nothing of {@code lengthBytes} is reserved
     */
    public void beginClaimed(FrameKind kind, long step, long tensorKey, DType dtype, int[] shape, int ndims,
                             long lengthBytes) {
        long start = claimedStart;
        if (start < 0 || lengthBytes != claimedBytes) {
            throw new IllegalStateException("no ring reservation of " + lengthBytes + " bytes (reserved "
                + (start < 0 ? 0 : claimedBytes) + ") to rank " + destRank);
        }
        begin(kind, step, tensorKey, dtype, shape, ndims, ring.address(start), lengthBytes);
        byReference = false;
        viaRing = true;
        frames.stagedInRing(start); // staged already: doSend announces it without copying
    }

    /**
     * Offers the publication's {@link FrameKind#HELLO} now, if one is still due (an auth key on a UDP publication)
     * and no tensor is in flight. A sender offers it before its first tensor anyway, usually in that tensor's
     * datagram; offered once connected, ahead of the first tensor, it travels alone.
     *
     * @return true once no hello is due any more; false while the publication does not take it (not connected,
     *         back-pressured)
     */
    public boolean offerHello() {
        if (helloPending && !active && frames.offerHello() > 0) {
            helloPending = false;
        }
        return !helloPending;
    }

    /**
     * Sends as many chunks as the publication takes now.
     *
     * @return chunks sent (0 when waiting on back-pressure or connection)
     * @throws TransportTimeoutException when a deadline passes
     * @throws TransportException        when the publication is closed or exhausted
     */
    public int doSend() {
        if (awaitingCopy) {
            return awaitCopy();
        }
        if (helloPending && active) {
            long result = frames.offerHello();
            if (result <= 0) {
                onFailedOffer(result); // not connected yet, back-pressured: the first tensor's deadlines hold
                return 0;
            }
            helloPending = false;
        }
        int chunks = 0;
        while (active) {
            long offset = sentBytes;
            int length;
            long result;
            if (byReference) {
                length = (int) totalBytes;
                result = frames.offerReference(offset, length);
            } else if (viaRing) {
                length = (int) Math.min(chunkBytes, totalBytes - offset);
                result = frames.offerRingChunk(offset, length);
            } else {
                length = (int) Math.min(chunkBytes, totalBytes - offset);
                result = frames.offerChunk(offset, length);
            }
            if (result > 0) {
                chunks++;
                sentBytes = offset + length;
                if (sentBytesCounter != null) {
                    sentBytesCounter.add(length);
                }
                if (sentBytes == totalBytes) {
                    if (byReference) {
                        awaitingCopy = true;
                        waitStartNs = System.nanoTime();
                        return chunks + awaitCopy();
                    }
                    active = false;
                    tensorsSent++;
                }
                continue;
            }
            if (chunks > 0) {
                waitStartNs = System.nanoTime();
            }
            onFailedOffer(result);
            break;
        }
        if (chunks > 0 && active) {
            waitStartNs = System.nanoTime();
        }
        return chunks;
    }

    /** Waits (without blocking) for a same-JVM receiver to copy a by-reference tensor. */
    private int awaitCopy() {
        if (localLink.isCopied()) {
            awaitingCopy = false;
            active = false;
            tensorsSent++;
            return 1;
        }
        long waitedNs = System.nanoTime() - waitStartNs;
        if ((waitedNs > backPressureTimeoutNs || publication.isClosed()) && localLink.revoke()) {
            awaitingCopy = false;
            fail(new TransportTimeoutException("back-pressured: the receiver did not take the tensor within "
                + "backPressureTimeoutNs=" + backPressureTimeoutNs + " (in-process copy): " + describe()));
        }
        return 0;
    }

    private void onFailedOffer(long result) {
        long waitedNs = System.nanoTime() - waitStartNs;
        if (result == Publication.BACK_PRESSURED || result == Publication.ADMIN_ACTION) {
            backPressureEvents++;
            if (waitedNs > backPressureTimeoutNs) {
                fail(new TransportTimeoutException("back-pressured without progress for " + waitedNs / 1_000_000
                    + " ms (backPressureTimeoutNs=" + backPressureTimeoutNs + "): " + describe()));
            }
        } else if (result == Publication.NOT_CONNECTED) {
            if (waitedNs > connectTimeoutNs) {
                fail(new TransportTimeoutException("peer not connected within connectTimeoutNs=" + connectTimeoutNs
                    + ": " + describe()));
            }
        } else if (result == Publication.CLOSED) {
            fail(new TransportException("publication closed: " + describe()));
        } else if (result == Publication.MAX_POSITION_EXCEEDED) {
            fail(new TransportException("publication reached its max position: " + describe()));
        } else {
            fail(new TransportException("unexpected offer result " + result + ": " + describe()));
        }
    }

    private void fail(TransportException e) {
        active = false;
        throw e;
    }

    private String describe() {
        return "source=" + sourceRank + ", dest=" + destRank + ", channel=" + publication.channel() + ", stream="
            + publication.streamId() + ", session=" + publication.sessionId() + ", key="
            + TensorKey.toString(frames.tensorKey()) + ", sentBytes=" + sentBytes + "/" + totalBytes;
    }

    /** Closes the publication (an in-flight tensor is abandoned). */
    @Override
    public void close() {
        if (localLink != null) {
            while (!localLink.revoke() && localLink.isCopying()) {
                Thread.onSpinWait(); // a copy in progress ends soon; the caller may free its memory after close
            }
        }
        active = false;
        awaitingCopy = false;
        publication.close();
        if (ring != null) {
            ring.close();
        }
        if (closeAction != null) {
            closeAction.run();
        }
    }

    /** Counts the payload bytes of every chunk handed over from now on into {@code counter}. Set-up time. */
    void countSentInto(PeerTraffic.Counter counter) {
        this.sentBytesCounter = counter;
    }

    /** Runs once on {@link #close()} (unregisters the in-process link). */
    void onClose(Runnable action) {
        this.closeAction = action;
    }
}
