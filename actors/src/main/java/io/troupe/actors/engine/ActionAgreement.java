package io.troupe.actors.engine;

import io.troupe.actors.schedule.Action;
import io.troupe.actors.schedule.ActionType;
import io.troupe.models.parallel.tp.TensorParallelGroup;
import io.troupe.runtime.device.Device;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;
import java.util.Arrays;

/**
 * The action a tensor-parallel group's leader (member 0) of a {@link StageWorker} started, made the same
 * on every member: orders chosen on arrival differ between members, whose actions issue collectives over
 * their group. Owns a three-element device tensor, freed by {@link #close}. Used only on the worker's
 * compute thread, by every member of the group in the same order.
 */
final class ActionAgreement implements AutoCloseable {
    private final Device device;
    private final TensorParallelGroup tensorParallel;
    private final Tensor agreed;
    private final float[] agreedHost = new float[3];

    ActionAgreement(Device device, TensorParallelGroup tensorParallel) {
        this.device = device;
        this.tensorParallel = tensorParallel;
        this.agreed = device.allocate(DType.F32, 3);
    }

    /**
     * The leader's ({@code chosen} non-null, tp member 0) action, the same on every member of the
     * tp group: an all-reduce of three small integers that only the leader contributes.
     */
    Action agree(Action chosen) {
        if (chosen != null) {
            agreedHost[0] = chosen.type().ordinal() + 1;
            agreedHost[1] = chosen.microbatch();
            agreedHost[2] = chosen.virtualStage();
        } else {
            Arrays.fill(agreedHost, 0f);
        }
        device.copyFromHost(agreedHost, agreed);
        tensorParallel.allReduceSum(agreed);
        device.copyToHost(agreed, agreedHost);
        int type = (int) agreedHost[0] - 1;
        if (type < 0 || type >= ActionType.values().length) {
            throw new IllegalStateException("tp member " + tensorParallel.index() + " got no action from its leader: "
                + Arrays.toString(agreedHost));
        }
        return new Action(ActionType.values()[type], (int) agreedHost[1], (int) agreedHost[2]);
    }

    @Override
    public void close() {
        agreed.close();
    }
}
