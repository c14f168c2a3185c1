package io.troupe.models.parallel.tp;

import io.troupe.collectives.CollectiveHandle;
import io.troupe.collectives.Communicator;
import io.troupe.collectives.ReduceOp;
import io.troupe.runtime.device.Device;
import io.troupe.runtime.device.DeviceKind;
import io.troupe.runtime.tensor.Tensor;
import java.util.concurrent.TimeUnit;

/**
 * A tensor-parallel group over the data plane: the collectives' {@link Communicator} of the tp
 * group (its members in tp order, so member {@code k} is tp_i = k). Sums, gathers and
 * reduce-scatters map one to one; the maximum, which the communicator does not reduce, is an
 * all-gather of every member's values followed by a local maximum in member order (the only max
 * in tensor parallelism is the cross-entropy's per-token one: tp × tokens floats).
 *
 * <p>The communicator works on CPU float32 memory, so this group serves CPU devices; every call
 * blocks until its collective is done. The async forms submit the communicator's own async
 * collective, which the collective agent's thread runs while the member computes; one handle is
 * reused for them (one in flight per member). Threading: the member's device executor.
 */
public final class CommunicatorTensorParallelGroup implements TensorParallelGroup, AutoCloseable {
    private final Communicator communicator;
    private final Device device;
    private Tensor gatherScratch;
    private final Pending pending = new Pending();

    /**
     * @param communicator the tp group's communicator, members in tp order
     * @param device       the device whose tensors the layers pass in (CPU)
     */
    public CommunicatorTensorParallelGroup(Communicator communicator, Device device) {
        if (device.kind() != DeviceKind.CPU) {
            throw new IllegalArgumentException("the data-plane tp group needs CPU tensors: device=" + device.name());
        }
        this.communicator = communicator;
        this.device = device;
    }

    /** A group whose scratch comes from the device of the tensors passed in (which must be CPU tensors). */
    public CommunicatorTensorParallelGroup(Communicator communicator) {
        this.communicator = communicator;
        this.device = null;
    }

    @Override
    public int size() {
        return communicator.size();
    }

    @Override
    public int index() {
        return communicator.myIndex();
    }

    @Override
    public void allReduceSum(Tensor t) {
        TensorParallelChecks.f32("allReduceSum", t);
        if (size() > 1) {
            communicator.allReduce(t, ReduceOp.SUM);
        }
    }

    @Override
    public void allReduceMax(Tensor t) {
        TensorParallelChecks.f32("allReduceMax", t);
        int n = size();
        if (n == 1) {
            return;
        }
        long count = t.numel();
        if (gatherScratch == null || gatherScratch.numel() < count * n) {
            if (gatherScratch != null) {
                gatherScratch.close();
            }
            gatherScratch = (device != null ? device : t.device()).allocate((int) (count * n));
        }
        Tensor all = gatherScratch.view(0, (int) (count * n));
        communicator.allGather(t, all);
        float[] v = all.toFloatArray();
        float[] out = new float[(int) count];
        System.arraycopy(v, 0, out, 0, (int) count);
        for (int k = 1; k < n; k++) {
            for (int i = 0; i < count; i++) {
                out[i] = Math.max(out[i], v[(int) (k * count + i)]);
            }
        }
        t.device().copyFromHost(out, t);
    }

    @Override
    public void allGather(Tensor shard, Tensor full) {
        TensorParallelChecks.segments("allGather", full, shard, size());
        if (size() == 1) {
            TensorParallelGroup.single().allGather(shard, full);
        } else {
            communicator.allGather(shard, full);
        }
    }

    @Override
    public void reduceScatter(Tensor full, Tensor shard) {
        TensorParallelChecks.segments("reduceScatter", full, shard, size());
        if (size() == 1) {
            TensorParallelGroup.single().reduceScatter(full, shard);
        } else {
            communicator.reduceScatter(full, shard, ReduceOp.SUM);
        }
    }

    @Override
    public PendingTensorParallelCollective allReduceSumAsync(Tensor t) {
        TensorParallelChecks.f32("allReduceSumAsync", t);
        if (size() == 1) {
            return DonePendingCollective.INSTANCE;
        }
        pending.start("allReduceSum(" + t.numel() + ")");
        communicator.allReduceAsync(t.address(), t.numel(), ReduceOp.SUM, 0, pending.handle);
        return pending;
    }

    @Override
    public PendingTensorParallelCollective allGatherAsync(Tensor shard, Tensor full) {
        TensorParallelChecks.segments("allGatherAsync", full, shard, size());
        if (size() == 1) {
            return TensorParallelGroup.single().allGatherAsync(shard, full);
        }
        pending.start("allGather(" + full.numel() + ")");
        communicator.allGatherAsync(shard.address(), full.address(), full.numel(), pending.handle);
        return pending;
    }

    @Override
    public PendingTensorParallelCollective reduceScatterAsync(Tensor full, Tensor shard) {
        TensorParallelChecks.segments("reduceScatterAsync", full, shard, size());
        if (size() == 1) {
            return TensorParallelGroup.single().reduceScatterAsync(full, shard);
        }
        pending.start("reduceScatter(" + full.numel() + ")");
        communicator.reduceScatterAsync(full.address(), full.numel(), shard.address(), ReduceOp.SUM, pending.handle);
        return pending;
    }

    /** The member's one async collective: the communicator's handle, reused. */
    private final class Pending implements PendingTensorParallelCollective {
        final CollectiveHandle handle = new CollectiveHandle();
        private String op;
        private boolean inFlight;

        void start(String what) {
            if (inFlight) {
                throw new IllegalStateException("tp member " + index() + " started " + what + " while " + op
                    + " is still in flight: await it first");
            }
            op = what;
            inFlight = true;
        }

        @Override
        public boolean isDone() {
            return handle.isDone();
        }

        @Override
        public void await(long timeoutNs) {
            boolean done;
            try {
                done = handle.await(timeoutNs, TimeUnit.NANOSECONDS);
            } catch (RuntimeException e) {
                inFlight = false;
                throw e;
            }
            if (!done) {
                StringBuilder peers = new StringBuilder();
                for (int k = 0; k < size(); k++) {
                    if (k != index()) {
                        peers.append(peers.length() == 0 ? "" : ", ").append("member ").append(k).append(" (rank ")
                            .append(communicator.group().rankAt(k)).append(')');
                    }
                }
                throw new TensorParallelTimeoutException("tp group " + communicator.group() + ": member " + index()
                    + " waited more than " + TimeUnit.NANOSECONDS.toMillis(timeoutNs) + " ms for " + op
                    + " with its peers " + peers);
            }
            inFlight = false;
        }

        @Override
        public void await() {
            await(communicator.settings().timeoutNs());
        }
    }

    /** Frees the gather scratch; the communicator belongs to the caller. */
    @Override
    public void close() {
        if (gatherScratch != null) {
            gatherScratch.close();
            gatherScratch = null;
        }
    }

    @Override
    public String toString() {
        return "CommunicatorTensorParallelGroup{" + communicator.group() + "}";
    }
}
