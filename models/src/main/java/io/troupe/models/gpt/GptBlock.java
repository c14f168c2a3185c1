package io.troupe.models.gpt;

import io.troupe.models.parallel.tp.ColumnParallelLinear;
import io.troupe.models.parallel.tp.RowParallelLinear;
import io.troupe.models.parallel.tp.SequenceParallel;
import io.troupe.models.parallel.tp.TensorParallelGroup;
import io.troupe.runtime.device.Device;
import io.troupe.runtime.tensor.Tensor;
import java.util.function.Function;

/**
 * One transformer block of a {@link Gpt} stage: its LayerNorm views (parameters and gradients)
 * and its four parallel linears (attention qkv and projection, MLP fc and projection) over the
 * stage's named parameter and gradient views, and its forward pass. Rebuilt with the stage's
 * other layers when the gradients move into an arena; its backward passes are in
 * {@link GptBackward}.
 */
final class GptBlock {
    final Tensor ln1W;
    final Tensor ln1B;
    final Tensor dln1W;
    final Tensor dln1B;
    final ColumnParallelLinear qkv;
    final RowParallelLinear proj;
    final Tensor ln2W;
    final Tensor ln2B;
    final Tensor dln2W;
    final Tensor dln2B;
    final ColumnParallelLinear fc;
    final RowParallelLinear fcProj;

    private final GptConfig cfg;
    private final Device dev;
    private final int heads;
    private final int rows;
    private final int residualRows;

    /**
     * Block {@code l} (its index in the whole model) over {@code param}'s views of the parameters
     * and {@code grads}' views of the gradients.
     */
    GptBlock(int l, GptConfig cfg, Device dev, TensorParallelGroup tp, SequenceParallel sp, int rows,
             int residualRows, Function<String, Tensor> param, GptGradients grads) {
        this.cfg = cfg;
        this.dev = dev;
        this.heads = cfg.nHead() / tp.size();
        this.rows = rows;
        this.residualRows = residualRows;
        String p = "blocks." + l + ".";
        int c = cfg.dModel();
        ln1W = param.apply(p + "ln1.weight");
        ln1B = param.apply(p + "ln1.bias");
        dln1W = grads.view(p + "ln1.weight");
        dln1B = grads.view(p + "ln1.bias");
        qkv = new ColumnParallelLinear(dev, tp, c, 3 * c, param.apply(p + "attn.qkv.weight"),
            param.apply(p + "attn.qkv.bias"), grads.view(p + "attn.qkv.weight"), grads.view(p + "attn.qkv.bias"), sp);
        proj = new RowParallelLinear(dev, tp, c, c, param.apply(p + "attn.proj.weight"),
            param.apply(p + "attn.proj.bias"), grads.view(p + "attn.proj.weight"), grads.view(p + "attn.proj.bias"),
            sp);
        ln2W = param.apply(p + "ln2.weight");
        ln2B = param.apply(p + "ln2.bias");
        dln2W = grads.view(p + "ln2.weight");
        dln2B = grads.view(p + "ln2.bias");
        fc = new ColumnParallelLinear(dev, tp, c, 4 * c, param.apply(p + "mlp.fc.weight"),
            param.apply(p + "mlp.fc.bias"), grads.view(p + "mlp.fc.weight"), grads.view(p + "mlp.fc.bias"), sp);
        fcProj = new RowParallelLinear(dev, tp, 4 * c, c, param.apply(p + "mlp.proj.weight"),
            param.apply(p + "mlp.proj.bias"), grads.view(p + "mlp.proj.weight"), grads.view(p + "mlp.proj.bias"), sp);
    }

    /**
     * The forward from {@code h} into {@code b}. {@code output} false (recomputation in backward)
     * stops after what backward reads: the MLP's projection and the block output are left out.
     */
    void forward(GptActivations.BlockTensors b, Tensor h, boolean output) {
        final int t = cfg.seqLen();
        final int c = cfg.dModel();
        final int bt = rows * t;
        final int nr = residualRows;      // tokens of the residual stream this member holds: B·T, or B·T/tp
        dev.layerNorm(h, ln1W, ln1B, b.ln1(), b.ln1Mean(), b.ln1Rstd(), nr, c, cfg.lnEps());
        qkv.forward(b.ln1(), b.qkv(), bt);                                                     // (B, T, 3C/tp)
        dev.attention(b.qkv(), b.atty(), b.att(), rows, t, heads, cfg.headDim());             // (B, T, C/tp)
        proj.forward(b.atty(), b.residual2(), bt);                                             // (nr, C)
        // residual2 = h + attn, then ln2 of it: one fused pass where the device has one
        dev.residualLayerNorm(b.residual2(), h, b.residual2(), ln2W, ln2B, b.ln2(), b.ln2Mean(), b.ln2Rstd(), nr, c,
            cfg.lnEps());
        // fch keeps the pre-activation for backward; bias and GELU fused
        fc.forwardGelu(b.ln2(), b.fch(), b.fchGelu(), bt);                                     // (B, T, 4C/tp)
        if (output) {
            fcProj.forwardResidual(b.fchGelu(), b.residual3(), b.residual2(), bt);            // (nr, C), h + mlp
        }
    }
}
