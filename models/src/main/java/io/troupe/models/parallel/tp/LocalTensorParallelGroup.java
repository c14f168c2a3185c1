package io.troupe.models.parallel.tp;

import io.troupe.runtime.device.DeviceKind;
import io.troupe.runtime.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BrokenBarrierException;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * A tensor-parallel group whose members are threads of one JVM (the in-process engine, tests):
 * each collective is a rendezvous in which every member publishes its input, then reads all of
 * them. CPU tensors are read in place (every member's device ops take any host address) and summed
 * with the device's own copy and axpy; tensors of other devices travel as host copies. Reductions
 * sum (or take the max) in member order 0, 1, …, so every member gets bitwise the same result on
 * every run, by either path.
 *
 * <p>Every member must issue the same collectives with the same counts: a member that issues a
 * different one fails all members with both signatures in the message; a member that does not
 * arrive within {@code timeoutMs} fails the others with a timeout, and the group stays broken.
 * Threading: each member is used by one thread, a different one per member.
 */
public final class LocalTensorParallelGroup implements TensorParallelGroup {
    private final Shared shared;
    private final int index;
    private Tensor scratch;

    private LocalTensorParallelGroup(Shared shared, int index) {
        this.shared = shared;
        this.index = index;
    }

    /** The {@code size} members of a new group, member {@code k} at index {@code k}. */
    public static List<TensorParallelGroup> create(int size, long timeoutMs) {
        if (size < 1) {
            throw new IllegalArgumentException("tp group size must be >= 1: size=" + size);
        }
        if (timeoutMs < 1) {
            throw new IllegalArgumentException("timeoutMs must be >= 1: timeoutMs=" + timeoutMs);
        }
        Shared s = new Shared(size, timeoutMs);
        List<TensorParallelGroup> members = new ArrayList<>(size);
        for (int k = 0; k < size; k++) {
            members.add(new LocalTensorParallelGroup(s, k));
        }
        return members;
    }

    @Override
    public int size() {
        return shared.size;
    }

    @Override
    public int index() {
        return index;
    }

    @Override
    public void allReduceSum(Tensor t) {
        TensorParallelChecks.f32("allReduceSum", t);
        if (shared.size == 1) {
            return;
        }
        if (t.device().kind() == DeviceKind.CPU) {
            Tensor[] all = exchange("allReduceSum", t);
            Tensor sum = scratch(t, t.numel());
            sumInMemberOrder(all, 0, sum);
            done();
            t.device().copy(sum, t);
            return;
        }
        float[][] all = exchange("allReduceSum", t.toFloatArray());
        float[] out = new float[all[0].length];
        for (float[] x : all) {
            for (int i = 0; i < out.length; i++) {
                out[i] += x[i];
            }
        }
        done();
        t.device().copyFromHost(out, t);
    }

    @Override
    public void allReduceMax(Tensor t) {
        TensorParallelChecks.f32("allReduceMax", t);
        float[][] all = exchange("allReduceMax", t.toFloatArray());
        float[] out = all[0].clone();
        for (int k = 1; k < all.length; k++) {
            for (int i = 0; i < out.length; i++) {
                out[i] = Math.max(out[i], all[k][i]);
            }
        }
        done();
        t.device().copyFromHost(out, t);
    }

    @Override
    public void allGather(Tensor shard, Tensor full) {
        TensorParallelChecks.segments("allGather", full, shard, shared.size);
        if (shard.device().kind() == DeviceKind.CPU) {
            Tensor[] all = exchange("allGather", shard);
            long n = shard.numel();
            for (int k = 0; k < all.length; k++) {
                full.device().copy(all[k], full.view(k * n, (int) n));
            }
            done();
            return;
        }
        float[][] all = exchange("allGather", shard.toFloatArray());
        int n = all[0].length;
        float[] out = new float[n * all.length];
        for (int k = 0; k < all.length; k++) {
            System.arraycopy(all[k], 0, out, k * n, n);
        }
        done();
        full.device().copyFromHost(out, full);
    }

    @Override
    public void reduceScatter(Tensor full, Tensor shard) {
        TensorParallelChecks.segments("reduceScatter", full, shard, shared.size);
        if (full.device().kind() == DeviceKind.CPU) {
            Tensor[] all = exchange("reduceScatter", full);
            Tensor sum = scratch(shard, shard.numel());
            sumInMemberOrder(all, index * shard.numel(), sum);
            done();
            shard.device().copy(sum, shard);
            return;
        }
        float[][] all = exchange("reduceScatter", full.toFloatArray());
        int n = (int) shard.numel();
        float[] out = new float[n];
        for (float[] x : all) {
            for (int i = 0; i < n; i++) {
                out[i] += x[index * n + i];
            }
        }
        done();
        shard.device().copyFromHost(out, shard);
    }

    /**
     * CPU tensors: publishes this member's tensor itself and waits for all; every member then reads
     * the others' memory directly (its device's ops take any host address) until {@link #done}.
     */
    private Tensor[] exchange(String op, Tensor mine) {
        shared.tensors[index] = mine;
        shared.ops[index] = op + "(" + mine.numel() + ", in place)";
        await();
        checkSignatures();
        return shared.tensors.clone();
    }

    /** {@code out = in[0][from..] + in[1][from..] + ...}, added in member order, {@code out.numel()} elements. */
    private static void sumInMemberOrder(Tensor[] in, long from, Tensor out) {
        int n = (int) out.numel();
        out.device().copy(in[0].view(from, n), out);
        for (int k = 1; k < in.length; k++) {
            out.device().axpy(1f, in[k].view(from, n), out);
        }
    }

    /** This member's scratch of at least {@code n} floats on {@code like}'s device, as an n-element view. */
    private Tensor scratch(Tensor like, long n) {
        if (scratch == null || scratch.numel() < n || scratch.device() != like.device()) {
            scratch = like.device().allocate((int) n);
        }
        return scratch.view(0, (int) n);
    }

    private void checkSignatures() {
        for (int k = 0; k < shared.size; k++) {
            if (!shared.ops[k].equals(shared.ops[index])) {
                String msg = "tp members disagree on the collective: member " + index + " issued " + shared.ops[index]
                    + ", member " + k + " issued " + shared.ops[k];
                shared.barrier.reset();
                throw new IllegalStateException(msg);
            }
        }
    }

    /** Publishes this member's input and waits for all; returns every member's input, by index. */
    private float[][] exchange(String op, float[] mine) {
        if (shared.size == 1) {
            return new float[][] {mine};
        }
        shared.inputs[index] = mine;
        shared.ops[index] = op + "(" + mine.length + ")";
        await();
        checkSignatures();
        return shared.inputs.clone();
    }

    /** Waits until every member has read the inputs, so the next collective may overwrite them. */
    private void done() {
        if (shared.size > 1) {
            await();
        }
    }

    /**
     * Breaks the group: members waiting in a collective fail at once, and every later collective
     * fails (a runtime calls it when one member's step failed, so its peers do not wait out the
     * timeout). Any thread.
     */
    public void abort(String reason) {
        shared.abortReason = reason;
        shared.barrier.reset();
    }

    private void await() {
        String aborted = shared.abortReason;
        if (aborted != null) {
            throw new IllegalStateException("tp group aborted: " + aborted);
        }
        try {
            shared.barrier.await(shared.timeoutMs, TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("tp member " + index + " interrupted while waiting for its peers", e);
        } catch (TimeoutException e) {
            throw new IllegalStateException("tp member " + index + " waited more than " + shared.timeoutMs
                + " ms for its peers (a peer issued no matching collective)", e);
        } catch (BrokenBarrierException e) {
            String reason = shared.abortReason;
            throw new IllegalStateException(reason != null ? "tp group aborted: " + reason
                : "tp group broken: a peer of member " + index + " failed or timed out", e);
        }
    }

    /** State every member of one group shares. */
    private static final class Shared {
        final int size;
        final long timeoutMs;
        final CyclicBarrier barrier;
        final float[][] inputs;
        final Tensor[] tensors;
        final String[] ops;
        volatile String abortReason;

        Shared(int size, long timeoutMs) {
            this.size = size;
            this.timeoutMs = timeoutMs;
            this.barrier = new CyclicBarrier(size);
            this.inputs = new float[size][];
            this.tensors = new Tensor[size];
            this.ops = new String[size];
        }
    }

    @Override
    public String toString() {
        return "LocalTensorParallelGroup{size=" + shared.size + ", index=" + index + "}";
    }
}
