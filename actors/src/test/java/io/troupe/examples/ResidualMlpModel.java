package io.troupe.examples;

import io.troupe.models.ParamSpec;
import io.troupe.models.StageModule;
import io.troupe.models.StageModuleFactory;
import io.troupe.runtime.device.Device;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * A user's own model, written against the stage contract only: a residual MLP language model
 * (token embedding; per layer {@code h += W2 gelu(W1 h + b1) + b2}; a linear head and softmax
 * cross-entropy). Troupe trains it with any layout and schedule, like GPT. Every parameter is
 * initialised from a seed derived from its name, so a split into stages does not change the model.
 */
public final class ResidualMlpModel implements StageModuleFactory {

    @Override
    public StageModule create(Stage s) {
        return new MlpStage(s);
    }

    private static final class MlpStage implements StageModule {
        private final Stage s;
        private final Device dev;
        private final int n;
        private final int c;
        private final int v;
        private final int layers;
        private final List<ParamSpec> specs = new ArrayList<>();
        private final Tensor params;
        private final Tensor grads;
        private final Map<Integer, Slot> slots = new HashMap<>();
        private final Tensor gradInput;
        private final Tensor dAct;

        MlpStage(Stage s) {
            this.s = s;
            this.dev = s.device();
            this.n = s.rows() * s.model().seqLen();
            this.c = s.model().dModel();
            this.v = s.model().vocabSize();
            this.layers = s.endLayer() - s.firstLayer();
            long off = 0;
            if (s.first()) {
                off = add("emb", off, v, c);
            }
            for (int l = s.firstLayer(); l < s.endLayer(); l++) {
                off = add("l" + l + ".w1", off, 4 * c, c);
                off = add("l" + l + ".b1", off, 4 * c);
                off = add("l" + l + ".w2", off, c, 4 * c);
                off = add("l" + l + ".b2", off, c);
            }
            if (s.last()) {
                off = add("head", off, v, c);
            }
            this.params = dev.allocate((int) off);
            this.grads = dev.allocate((int) off);
            this.gradInput = dev.allocate(s.rows(), s.model().seqLen(), c);
            this.dAct = dev.allocate(n, 4 * c);
            float[] init = new float[(int) off];
            for (ParamSpec p : specs) {
                Random rnd = new Random(s.seed() ^ p.name().hashCode());
                double scale = p.shape().length == 1 ? 0 : 1 / Math.sqrt(p.shape()[1]);
                for (int i = 0; i < p.numel(); i++) {
                    init[(int) (p.localOffset() + i)] = (float) ((rnd.nextDouble() * 2 - 1) * scale);
                }
            }
            dev.copyFromHost(init, params);
        }

        private long add(String name, long off, int... shape) {
            long numel = 1;
            for (int d : shape) {
                numel *= d;
            }
            specs.add(new ParamSpec(name, shape, off, off, numel, 0, 0, shape.length > 1));
            return off + numel;
        }

        private Tensor p(Tensor flat, String name) {
            for (ParamSpec sp : specs) {
                if (sp.name().equals(name)) {
                    return flat.view(sp.localOffset(), sp.shape());
                }
            }
            throw new IllegalArgumentException(name);
        }

        /** Activations of one micro-batch in flight. */
        private final class Slot {
            final Tensor ids = dev.allocate(DType.I32, n);
            final Tensor targets = dev.allocate(DType.I32, n);
            final Tensor[] h = new Tensor[layers + 1];
            final Tensor[] dh = new Tensor[layers + 1];
            final Tensor[] pre = new Tensor[layers];
            final Tensor[] act = new Tensor[layers];
            final Tensor[] dPre = new Tensor[layers];
            final Tensor logits = dev.allocate(n, v);
            final Tensor probs = dev.allocate(n, v);
            final Tensor losses = dev.allocate(n);
            double loss;

            Slot() {
                for (int i = 0; i <= layers; i++) {
                    h[i] = dev.allocate(n, c);
                    dh[i] = dev.allocate(n, c);
                }
                for (int i = 0; i < layers; i++) {
                    pre[i] = dev.allocate(n, 4 * c);
                    act[i] = dev.allocate(n, 4 * c);
                    dPre[i] = dev.allocate(n, 4 * c);
                }
            }

            void close() {
                for (Tensor t : List.of(ids, targets, logits, probs, losses)) {
                    t.close();
                }
                for (Tensor[] ts : List.of(h, dh, pre, act, dPre)) {
                    for (Tensor t : ts) {
                        t.close();
                    }
                }
            }
        }

        @Override
        public boolean isFirst() {
            return s.first();
        }

        @Override
        public boolean isLast() {
            return s.last();
        }

        @Override
        public Device device() {
            return dev;
        }

        @Override
        public List<ParamSpec> parameters() {
            return specs;
        }

        @Override
        public Tensor params() {
            return params;
        }

        @Override
        public Tensor grads() {
            return grads;
        }

        @Override
        public void zeroGrads() {
            dev.fill(grads, 0f);
        }

        @Override
        public Tensor forward(int slot, Tensor input, Tensor targets) {
            Slot a = slots.computeIfAbsent(slot, k -> new Slot());
            if (s.first()) {
                dev.copy(input, a.ids);
                dev.embedding(a.h[0], a.ids, p(params, "emb"), n, c, false);
            } else {
                dev.copy(input.reshape(n, c), a.h[0]);
            }
            for (int i = 0; i < layers; i++) {
                int l = s.firstLayer() + i;
                dev.matmul(false, true, n, 4 * c, c, 1f, a.h[i], p(params, "l" + l + ".w1"), 0f, a.pre[i]);
                dev.biasAdd(a.pre[i], p(params, "l" + l + ".b1"), n, 4 * c);
                dev.gelu(a.pre[i], a.act[i], (long) n * 4 * c);
                dev.copy(a.h[i], a.h[i + 1]);
                dev.matmul(false, true, n, c, 4 * c, 1f, a.act[i], p(params, "l" + l + ".w2"), 1f, a.h[i + 1]);
                dev.biasAdd(a.h[i + 1], p(params, "l" + l + ".b2"), n, c);
            }
            if (!s.last()) {
                return a.h[layers].reshape(s.rows(), s.model().seqLen(), c);
            }
            dev.copy(targets, a.targets);
            dev.matmul(false, true, n, v, c, 1f, a.h[layers], p(params, "head"), 0f, a.logits);
            dev.crossEntropy(a.logits, a.targets, a.probs, a.losses, n, v);
            float[] l = new float[n];
            dev.copyToHost(a.losses, l);
            double sum = 0;
            for (float x : l) {
                sum += x;
            }
            a.loss = sum / n;
            return null;
        }

        @Override
        public double loss(int slot) {
            return slots.get(slot).loss;
        }

        @Override
        public Tensor backwardInput(int slot, Tensor gradOutput, float lossScale) {
            Slot a = slots.get(slot);
            if (s.last()) {
                dev.crossEntropyBackward(a.logits, a.probs, a.targets, lossScale, n, v);
                dev.matmul(false, false, n, c, v, 1f, a.logits, p(params, "head"), 0f, a.dh[layers]);
            } else {
                dev.copy(gradOutput.reshape(n, c), a.dh[layers]);
            }
            for (int i = layers - 1; i >= 0; i--) {
                int l = s.firstLayer() + i;
                dev.matmul(false, false, n, 4 * c, c, 1f, a.dh[i + 1], p(params, "l" + l + ".w2"), 0f, dAct);
                dev.geluBackward(a.pre[i], dAct, a.dPre[i], (long) n * 4 * c);
                dev.copy(a.dh[i + 1], a.dh[i]);
                dev.matmul(false, false, n, c, 4 * c, 1f, a.dPre[i], p(params, "l" + l + ".w1"), 1f, a.dh[i]);
            }
            if (s.first()) {
                return null;
            }
            dev.copy(a.dh[0], gradInput.reshape(n, c));
            return gradInput;
        }

        @Override
        public void backwardWeight(int slot) {
            Slot a = slots.get(slot);
            if (s.last()) {
                dev.matmul(true, false, v, c, n, 1f, a.logits, a.h[layers], 1f, p(grads, "head"));
            }
            for (int i = layers - 1; i >= 0; i--) {
                int l = s.firstLayer() + i;
                dev.matmul(true, false, c, 4 * c, n, 1f, a.dh[i + 1], a.act[i], 1f, p(grads, "l" + l + ".w2"));
                dev.biasBackward(p(grads, "l" + l + ".b2"), a.dh[i + 1], n, c);
                dev.matmul(true, false, 4 * c, c, n, 1f, a.dPre[i], a.h[i], 1f, p(grads, "l" + l + ".w1"));
                dev.biasBackward(p(grads, "l" + l + ".b1"), a.dPre[i], n, 4 * c);
            }
            if (s.first()) {
                dev.embeddingBackward(p(grads, "emb"), a.dh[0], a.ids, n, c);
            }
        }

        @Override
        public void close() {
            for (Slot a : slots.values()) {
                a.close();
            }
            params.close();
            grads.close();
            gradInput.close();
            dAct.close();
        }
    }
}
