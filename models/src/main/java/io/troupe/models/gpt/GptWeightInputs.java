package io.troupe.models.gpt;

import io.troupe.runtime.device.Device;
import io.troupe.runtime.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;

/**
 * Under full recomputation with the weight-gradient pass (W) split from the input-gradient pass (B),
 * as the zero-bubble schedules run them: what W reads for every block of one micro-batch, written
 * by B while it recomputes the block and kept until W. A stage pools these, so it holds as many as
 * micro-batches wait between their B and their W. Legend as in {@link GptActivations}.
 */
final class GptWeightInputs implements AutoCloseable {
    final Tensor[] ln1;        // (B·T, C) input of qkv
    final Tensor[] atty;       // (B, T, C/tp) input of proj
    final Tensor[] ln2;        // (B·T, C) input of fc
    final Tensor[] fchGelu;    // (B, T, 4C/tp) input of mlp.proj
    final Tensor[] dqkv;       // (B, T, 3C/tp)
    final Tensor[] dAttProj;   // (B·T, C)
    final Tensor[] dfch;       // (B, T, 4C/tp)
    final Tensor[] dFcProj;    // (B·T, C)
    private final List<Tensor> owned = new ArrayList<>();

    GptWeightInputs(Device dev, GptConfig cfg, int tp, int residualRows, int rows, int blocks) {
        int bt = rows * cfg.seqLen();
        int c = cfg.dModel();
        ln1 = new Tensor[blocks];
        atty = new Tensor[blocks];
        ln2 = new Tensor[blocks];
        fchGelu = new Tensor[blocks];
        dqkv = new Tensor[blocks];
        dAttProj = new Tensor[blocks];
        dfch = new Tensor[blocks];
        dFcProj = new Tensor[blocks];
        for (int l = 0; l < blocks; l++) {
            ln1[l] = own(dev.allocate(residualRows, c));
            atty[l] = own(dev.allocate(bt, c / tp));
            ln2[l] = own(dev.allocate(residualRows, c));
            fchGelu[l] = own(dev.allocate(bt, 4 * c / tp));
            dqkv[l] = own(dev.allocate(bt, 3 * c / tp));
            dAttProj[l] = own(dev.allocate(residualRows, c));
            dfch[l] = own(dev.allocate(bt, 4 * c / tp));
            dFcProj[l] = own(dev.allocate(residualRows, c));
        }
    }

    private Tensor own(Tensor t) {
        owned.add(t);
        return t;
    }

    /** Bytes of every tensor held. */
    long bytes() {
        long b = 0;
        for (Tensor t : owned) {
            b += t.numel() * t.dtype().sizeBytes();
        }
        return b;
    }

    @Override
    public void close() {
        for (Tensor t : owned) {
            t.close();
        }
        owned.clear();
    }
}
