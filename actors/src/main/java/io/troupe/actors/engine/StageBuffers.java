package io.troupe.actors.engine;

import io.troupe.runtime.device.Device;
import io.troupe.runtime.device.StagedInput;
import io.troupe.runtime.device.StagedOutput;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;
import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Iterator;
import java.util.Map;

/**
 * The data-plane buffers of one {@link StageWorker}, through its device's staging
 * ({@link StagedInput}, {@link StagedOutput}): a received activation or gradient lands in the host
 * half of a staged input (one per kind, micro-batch and virtual stage, reused every step), is uploaded
 * when the worker takes its notice, and acquired right before the action that reads it. A sent tensor
 * is downloaded into a staged output and handed to the {@link StageLink} once it is in host memory:
 * at once on the CPU (where nothing moves), later on a GPU, where the copy overlaps the next action's
 * kernels. Sends leave in the order they were issued.
 *
 * <p>Threading: {@link #receiveBuffer} from any thread (the network's); everything else from the
 * worker's thread.
 */
final class StageBuffers implements AutoCloseable {
    private record PendingSend(boolean gradient, int dp, int pp, long step, int mb, int v, StagedOutput out) {
    }

    private final Device device;
    private final Map<Long, StagedInput> inputs = new HashMap<>();    // guarded by itself
    private final Map<Long, StagedOutput> outputs = new HashMap<>();
    private final ArrayDeque<PendingSend> pending = new ArrayDeque<>();

    StageBuffers(Device device) {
        this.device = device;
    }

    /** The host tensor a received activation or gradient of (mb, v) is written into; allocated on first use. */
    Tensor receiveBuffer(boolean gradient, int mb, int v, int[] shape) {
        synchronized (inputs) {
            return inputs.computeIfAbsent(key(gradient, mb, v), k -> device.openStagedInput(DType.F32, shape)).host();
        }
    }

    /** Host bytes of the receive buffers allocated so far (kept and reused every step). */
    long receiveBytes() {
        synchronized (inputs) {
            long b = 0;
            for (StagedInput in : inputs.values()) {
                b += in.host().numel() * 4;
            }
            return b;
        }
    }

    /** The notice of (mb, v) was taken: starts moving its bytes to the device. */
    void upload(boolean gradient, int mb, int v) {
        input(gradient, mb, v).upload();
    }

    /** The device tensor of (mb, v), ordered after its upload; call {@link #release} after issuing its reader. */
    Tensor acquire(boolean gradient, int mb, int v) {
        return input(gradient, mb, v).acquire();
    }

    void release(boolean gradient, int mb, int v) {
        input(gradient, mb, v).release();
    }

    private StagedInput input(boolean gradient, int mb, int v) {
        synchronized (inputs) {
            StagedInput in = inputs.get(key(gradient, mb, v));
            if (in == null) {
                throw new IllegalStateException("no " + (gradient ? "gradient" : "activation") + " received for mb="
                    + mb + ", v=" + v);
            }
            return in;
        }
    }

    /**
     * Sends {@code src} (this worker's output of micro-batch {@code mb}, virtual stage {@code v}) to replica
     * {@code dp}'s rank {@code pp}, virtual stage {@code peerV}: downloads it and sends now if it is already
     * in host memory and nothing is queued, else queues the send for {@link #sendCompleted}/{@link #sendOldest}.
     */
    void send(StageLink link, boolean gradient, int dp, int pp, long step, int mb, int v, int peerV, Tensor src) {
        StagedOutput out = outputs.computeIfAbsent(key(gradient, mb, v),
            k -> device.openStagedOutput(src.dtype(), src.shape()));
        out.download(src);
        PendingSend s = new PendingSend(gradient, dp, pp, step, mb, peerV, out);
        if (pending.isEmpty() && out.isDone()) {
            deliver(link, s);
        } else {
            pending.add(s);
        }
    }

    /** Sends every queued tensor whose download has completed, oldest first; never blocks on a copy. */
    void sendCompleted(StageLink link) {
        while (!pending.isEmpty() && pending.peek().out().isDone()) {
            deliver(link, pending.poll());
        }
    }

    /** Waits for the oldest queued download and sends it; false when nothing is queued. */
    boolean sendOldest(StageLink link) {
        PendingSend s = pending.poll();
        if (s == null) {
            return false;
        }
        s.out().await();
        deliver(link, s);
        return true;
    }

    /** Sends everything queued, waiting for the downloads. */
    void sendAll(StageLink link) {
        while (sendOldest(link)) {
            // each call sends one
        }
    }

    private static void deliver(StageLink link, PendingSend s) {
        if (s.gradient()) {
            link.sendGradient(s.dp(), s.pp(), s.step(), s.mb(), s.v(), s.out().host());
        } else {
            link.sendActivation(s.dp(), s.pp(), s.step(), s.mb(), s.v(), s.out().host());
        }
    }

    /** Frees the buffers of micro-batch ids {@code >= firstId} (the evaluation ones). */
    void closeFrom(int firstId) {
        synchronized (inputs) {
            closeFrom(inputs, firstId);
        }
        closeFrom(outputs, firstId);
    }

    private static void closeFrom(Map<Long, ? extends AutoCloseable> m, int firstId) {
        Iterator<? extends Map.Entry<Long, ? extends AutoCloseable>> it = m.entrySet().iterator();
        while (it.hasNext()) {
            var en = it.next();
            if ((int) (en.getKey() & 0xFFFF_FFFFL) >= firstId) {
                closeQuietly(en.getValue());
                it.remove();
            }
        }
    }

    private static void closeQuietly(AutoCloseable c) {
        try {
            c.close();
        } catch (Exception e) {
            throw new IllegalStateException("closing a staged buffer failed: " + e.getMessage(), e);
        }
    }

    private static long key(boolean gradient, int mb, int v) {
        return (gradient ? 1L << 62 : 0) | ((long) v << 32) | mb;
    }

    @Override
    public void close() {
        pending.clear();
        synchronized (inputs) {
            inputs.values().forEach(StageBuffers::closeQuietly);
            inputs.clear();
        }
        outputs.values().forEach(StageBuffers::closeQuietly);
        outputs.clear();
    }
}
