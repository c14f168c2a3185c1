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
 *
 * <p>Async collectives (CPU tensors): each member publishes its tensors and goes on; the last member
 * to start the collective completes it for all of them (sums in member order into every member's
 * tensor, so bitwise as the blocking form) before its start returns, and the others find it done
 * when they await. A member that starts first thus computes instead of waiting for a slower peer;
 * the work of the reduction itself is not hidden (it runs on the last member's thread). Tensors of
 * other devices run the blocking collective at the start.
 */
public final class LocalTensorParallelGroup implements TensorParallelGroup {
    private final Shared shared;
    private final int index;
    private Tensor scratch;
    private final AsyncHandle async = new AsyncHandle();
    /** The async collective this member started and has not awaited, or null. */
    private AsyncHandle inFlight;

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

    @Override
    public PendingTensorParallelCollective allReduceSumAsync(Tensor t) {
        TensorParallelChecks.f32("allReduceSumAsync", t);
        return startAsync(AsyncOp.ALL_REDUCE_SUM, t, null, "allReduceSum(" + t.numel() + ", async)");
    }

    @Override
    public PendingTensorParallelCollective allGatherAsync(Tensor shard, Tensor full) {
        TensorParallelChecks.segments("allGatherAsync", full, shard, shared.size);
        return startAsync(AsyncOp.ALL_GATHER, shard, full, "allGather(" + shard.numel() + ", async)");
    }

    @Override
    public PendingTensorParallelCollective reduceScatterAsync(Tensor full, Tensor shard) {
        TensorParallelChecks.segments("reduceScatterAsync", full, shard, shared.size);
        return startAsync(AsyncOp.REDUCE_SCATTER, full, shard, "reduceScatter(" + full.numel() + ", async)");
    }

    private enum AsyncOp { ALL_REDUCE_SUM, ALL_GATHER, REDUCE_SCATTER }

    /**
     * Joins the group's open round of this collective (opening it if this member is the first) and,
     * as the last member to join, completes it for everyone.
     */
    private PendingTensorParallelCollective startAsync(AsyncOp op, Tensor a, Tensor b, String signature) {
        if (shared.size == 1 || a.device().kind() != DeviceKind.CPU) {
            switch (op) {
                case ALL_REDUCE_SUM -> allReduceSum(a);
                case ALL_GATHER -> allGather(a, b);
                case REDUCE_SCATTER -> reduceScatter(a, b);
                default -> throw new IllegalStateException("unknown op " + op);
            }
            return DonePendingCollective.INSTANCE;
        }
        checkNoneInFlight(signature);
        Round r;
        boolean last;
        synchronized (shared) {
            String aborted = shared.abortReason;
            if (aborted != null) {
                throw new IllegalStateException("tp group aborted: " + aborted);
            }
            r = shared.round;
            if (r != null && r.failed()) {
                throw new IllegalStateException(r.failure);
            }
            if (r == null) {
                r = new Round(shared.size);
                shared.round = r;
            }
            r.first[index] = a;
            r.second[index] = b;
            r.ops[index] = signature;
            r.arrived++;
            last = r.arrived == shared.size;
            if (last) {
                shared.round = null;
            }
        }
        async.round = r;
        async.op = signature;
        inFlight = async;
        if (last) {
            complete(op, r);
        }
        return async;
    }

    /** The last member's part: every member's result, reduced in member order, written into its tensors. */
    private void complete(AsyncOp op, Round r) {
        for (int k = 0; k < shared.size; k++) {
            if (!r.ops[k].equals(r.ops[index])) {
                String msg = "tp members disagree on the collective: member " + index + " issued " + r.ops[index]
                    + ", member " + k + " issued " + r.ops[k];
                r.finish(msg);
                throw new IllegalStateException(msg);
            }
        }
        try {
            Tensor mine = r.first[index];
            switch (op) {
                case ALL_REDUCE_SUM -> {
                    Tensor sum = scratch(mine, mine.numel());
                    sumInMemberOrder(r.first, 0, sum);
                    for (Tensor t : r.first) {
                        sum.device().copy(sum, t);
                    }
                }
                case ALL_GATHER -> {
                    int n = (int) mine.numel();
                    for (Tensor full : r.second) {
                        for (int k = 0; k < shared.size; k++) {
                            mine.device().copy(r.first[k], full.view((long) k * n, n));
                        }
                    }
                }
                case REDUCE_SCATTER -> {
                    for (int m = 0; m < shared.size; m++) {
                        Tensor shard = r.second[m];
                        Tensor sum = scratch(mine, shard.numel());
                        sumInMemberOrder(r.first, m * shard.numel(), sum);
                        sum.device().copy(sum, shard);
                    }
                }
                default -> throw new IllegalStateException("unknown op " + op);
            }
        } catch (RuntimeException e) {
            r.finish("member " + index + " failed completing " + r.ops[index] + ": " + e);
            throw e;
        }
        r.finish(null);
    }

    private void checkNoneInFlight(String next) {
        if (inFlight != null) {
            throw new IllegalStateException("tp member " + index + " issued " + next + " while " + inFlight.op
                + " is still in flight: await it first");
        }
    }

    /** This member's handle on its async collective; reused for the next one once awaited. */
    private final class AsyncHandle implements PendingTensorParallelCollective {
        Round round;
        String op;

        @Override
        public boolean isDone() {
            synchronized (round) {
                return round.done;
            }
        }

        @Override
        public void await(long timeoutNs) {
            Round r = round;
            long deadline = System.nanoTime() + timeoutNs;
            try {
                synchronized (r) {
                    long left = timeoutNs;
                    while (!r.done && left > 0) {
                        TimeUnit.NANOSECONDS.timedWait(r, left);
                        left = deadline - System.nanoTime();
                    }
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                inFlight = null;
                throw new IllegalStateException("tp member " + index + " interrupted while awaiting " + op, e);
            }
            inFlight = null;
            if (!r.done) {
                StringBuilder missing = new StringBuilder();
                synchronized (shared) {
                    for (int k = 0; k < shared.size; k++) {
                        if (r.ops[k] == null) {
                            missing.append(missing.length() == 0 ? "" : ", ").append("member ").append(k);
                        }
                    }
                }
                String msg = "tp group " + LocalTensorParallelGroup.this.groupName() + ": member " + index
                    + " waited more than " + TimeUnit.NANOSECONDS.toMillis(timeoutNs) + " ms for " + op + "; "
                    + (missing.length() == 0 ? "every peer started it, the last one is still completing it"
                    : "not started by its peer " + missing);
                r.finish(msg);
                throw new TensorParallelTimeoutException(msg);
            }
            if (r.failure != null) {
                throw new IllegalStateException(r.failure);
            }
        }

        @Override
        public void await() {
            await(TimeUnit.MILLISECONDS.toNanos(shared.timeoutMs));
        }
    }

    private String groupName() {
        return "in-process(size=" + shared.size + ")";
    }

    /** One async collective of the group: each member's tensors and signature as it starts. */
    private static final class Round {
        final Tensor[] first;
        final Tensor[] second;
        final String[] ops;
        int arrived;
        boolean done;
        String failure;

        Round(int size) {
            first = new Tensor[size];
            second = new Tensor[size];
            ops = new String[size];
        }

        synchronized boolean failed() {
            return done && failure != null;
        }

        /** Done, successfully ({@code failure} null) or not; the first outcome stays. */
        synchronized void finish(String why) {
            if (!done) {
                failure = why;
                done = true;
                notifyAll();
            }
        }
    }

    /**
     * CPU tensors: publishes this member's tensor itself and waits for all; every member then reads
     * the others' memory directly (its device's ops take any host address) until {@link #done}.
     */
    private Tensor[] exchange(String op, Tensor mine) {
        checkNoneInFlight(op);
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
        checkNoneInFlight(op);
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
        synchronized (shared) {
            shared.abortReason = reason;
            if (shared.round != null) {
                shared.round.finish("tp group aborted: " + reason);
            }
        }
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
        /** The async collective some members have started and others not yet, or null. */
        Round round;

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
