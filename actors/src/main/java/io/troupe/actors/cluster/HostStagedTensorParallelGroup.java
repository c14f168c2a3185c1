package io.troupe.actors.cluster;

import io.troupe.models.parallel.tp.PendingTensorParallelCollective;
import io.troupe.models.parallel.tp.TensorParallelGroup;
import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.device.DeviceKind;
import io.troupe.runtime.tensor.Tensor;

/**
 * A tensor-parallel group over the data plane for members whose tensors may live on a GPU: the
 * data plane's group reduces CPU memory, so a GPU tensor is downloaded into a host copy, the wrapped
 * group runs the collective on the copies, and the result is uploaded back (what {@link HostMirror}
 * does for a fixed tensor, here for whichever tensors the layers pass in). CPU tensors go to the
 * wrapped group as they are, with no copy.
 *
 * <p>The host copies are kept by element count and reused: a member's collectives come in a handful
 * of sizes (activations, per-token statistics, partial gradients), so the steady state allocates no
 * tensor. An async collective downloads at its start and uploads when it is awaited; one collective
 * per member is in flight ({@link TensorParallelGroup}'s contract), so it has the copies to itself.
 * The result is bitwise the wrapped group's on the host values.
 *
 * <p>Threading: the member's device thread, which issues every call of its tensors' device.
 */
final class HostStagedTensorParallelGroup implements TensorParallelGroup, AutoCloseable {
    private final TensorParallelGroup inner;
    private final CpuDevice hostDevice;
    /** Host copies by element count, grown on the first collective of each size. */
    private HostMirror[] copies = new HostMirror[0];
    private final Pending pending = new Pending();

    /**
     * @param inner      the data plane's group (CPU tensors)
     * @param hostDevice the CPU device that holds the host copies
     */
    HostStagedTensorParallelGroup(TensorParallelGroup inner, CpuDevice hostDevice) {
        this.inner = inner;
        this.hostDevice = hostDevice;
    }

    @Override
    public int size() {
        return inner.size();
    }

    @Override
    public int index() {
        return inner.index();
    }

    @Override
    public void allReduceSum(Tensor t) {
        if (onHost(t)) {
            inner.allReduceSum(t);
            return;
        }
        HostMirror s = download(t);
        inner.allReduceSum(s.host());
        s.uploadTo(t);
    }

    @Override
    public void allReduceMax(Tensor t) {
        if (onHost(t)) {
            inner.allReduceMax(t);
            return;
        }
        HostMirror s = download(t);
        inner.allReduceMax(s.host());
        s.uploadTo(t);
    }

    @Override
    public void allGather(Tensor shard, Tensor full) {
        if (direct(shard, full)) {
            inner.allGather(shard, full);
            return;
        }
        HostMirror out = copyOf(full.numel());
        inner.allGather(download(shard).host(), out.host());
        out.uploadTo(full);
    }

    @Override
    public void reduceScatter(Tensor full, Tensor shard) {
        if (direct(shard, full)) {
            inner.reduceScatter(full, shard);
            return;
        }
        HostMirror out = copyOf(shard.numel());
        inner.reduceScatter(download(full).host(), out.host());
        out.uploadTo(shard);
    }

    @Override
    public PendingTensorParallelCollective allReduceSumAsync(Tensor t) {
        if (onHost(t)) {
            return inner.allReduceSumAsync(t);
        }
        HostMirror s = download(t);
        return pending.start(inner.allReduceSumAsync(s.host()), s, t);
    }

    @Override
    public PendingTensorParallelCollective allGatherAsync(Tensor shard, Tensor full) {
        if (direct(shard, full)) {
            return inner.allGatherAsync(shard, full);
        }
        HostMirror out = copyOf(full.numel());
        return pending.start(inner.allGatherAsync(download(shard).host(), out.host()), out, full);
    }

    @Override
    public PendingTensorParallelCollective reduceScatterAsync(Tensor full, Tensor shard) {
        if (direct(shard, full)) {
            return inner.reduceScatterAsync(full, shard);
        }
        HostMirror out = copyOf(shard.numel());
        return pending.start(inner.reduceScatterAsync(download(full).host(), out.host()), out, shard);
    }

    private static boolean onHost(Tensor t) {
        return t.device().kind() == DeviceKind.CPU;
    }

    /** A gather or scatter the wrapped group runs as it is: CPU tensors, or a group of one (a device copy). */
    private boolean direct(Tensor a, Tensor b) {
        return inner.size() == 1 || onHost(a) && onHost(b);
    }

    /** {@code t}'s values in the host copy of its size. */
    private HostMirror download(Tensor t) {
        HostMirror m = copyOf(t.numel());
        m.downloadFrom(t);
        return m;
    }

    /** The host copy of {@code numel} floats, made on first use. */
    private HostMirror copyOf(long numel) {
        for (HostMirror m : copies) {
            if (m.host().numel() == numel) {
                return m;
            }
        }
        HostMirror m = HostMirror.ofSize(numel, hostDevice);
        HostMirror[] grown = java.util.Arrays.copyOf(copies, copies.length + 1);
        grown[copies.length] = m;
        copies = grown;
        return m;
    }

    /** The member's one async collective over host copies: the wrapped group's handle, then the upload. */
    private static final class Pending implements PendingTensorParallelCollective {
        private PendingTensorParallelCollective inner;
        private HostMirror result;
        private Tensor target;

        PendingTensorParallelCollective start(PendingTensorParallelCollective started, HostMirror from, Tensor to) {
            inner = started;
            result = from;
            target = to;
            return this;
        }

        @Override
        public boolean isDone() {
            return inner.isDone();
        }

        @Override
        public void await(long timeoutNs) {
            inner.await(timeoutNs);
            upload();
        }

        @Override
        public void await() {
            inner.await();
            upload();
        }

        private void upload() {
            if (target != null) {
                result.uploadTo(target);
                target = null;
            }
        }
    }

    /** Frees the host copies; the wrapped group belongs to the caller. */
    @Override
    public void close() {
        for (HostMirror m : copies) {
            m.close();
        }
        copies = new HostMirror[0];
    }

    @Override
    public String toString() {
        return "HostStagedTensorParallelGroup{" + inner + "}";
    }
}
