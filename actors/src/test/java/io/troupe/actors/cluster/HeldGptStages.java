package io.troupe.actors.cluster;

import io.troupe.models.ModelShape;
import io.troupe.models.ParamSpec;
import io.troupe.models.StageModule;
import io.troupe.models.StageModuleFactory;
import io.troupe.models.gpt.GptStages;
import io.troupe.models.memory.GradientArena;
import io.troupe.models.memory.Recompute;
import io.troupe.models.parallel.TensorParallelPlacement;
import io.troupe.models.parallel.tp.TensorParallelGroup;
import io.troupe.runtime.device.Device;
import io.troupe.runtime.tensor.Tensor;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.IntConsumer;

/**
 * Test fixture: GPT's stages ({@link GptStages}, every call passed on unchanged, so a job trains bitwise as with the
 * built-in factory) that a test can hold at the start of a step. {@link #holdAtStep} arms a {@link Hold}; each stage
 * built from then on (in any node of the test's JVM) waits at the start of its {@code step}-th step, counted from
 * the stage's build, before any of that step's work, until the hold is released. Every step needs every rank, so a
 * job whose stages are held cannot complete that step: a test can lose a node at an exact step, and release the
 * survivors once the coordinator has noticed. A stage waits at most {@link #HOLD_LIMIT_S} s, then fails its step.
 */
public final class HeldGptStages implements StageModuleFactory {
    /** The longest a stage waits for a release before it fails its step, in seconds. */
    static final long HOLD_LIMIT_S = 60;

    private static volatile Hold armed;

    private final GptStages gpt = new GptStages();

    /**
     * Arms a hold at the start of the {@code step}-th step (1-based) of every stage built from now on, replacing any
     * hold armed before (stages built earlier keep theirs).
     */
    static synchronized Hold holdAtStep(int step) {
        if (step < 1) {
            throw new IllegalArgumentException("a stage is held at a step >= 1: step=" + step);
        }
        Hold h = new Hold(step);
        armed = h;
        return h;
    }

    /** Disarms and releases whatever hold is armed (a test's clean-up). */
    static void releaseAll() {
        Hold h = armed;
        if (h != null) {
            h.release();
        }
    }

    @Override
    public StageModule create(Stage stage) {
        return new HeldStage(gpt.create(stage), armed);
    }

    @Override
    public StageModule create(Stage stage, TensorParallelGroup group, boolean sequenceParallel) {
        return new HeldStage(gpt.create(stage, group, sequenceParallel), armed);
    }

    @Override
    public boolean supportsTensorParallel() {
        return gpt.supportsTensorParallel();
    }

    @Override
    public void checkTensorParallel(ModelShape model, int tp) {
        gpt.checkTensorParallel(model, tp);
    }

    /** One armed hold: stages wait at its step until {@link #release()}. Thread-safe. */
    static final class Hold {
        private final int step;
        private final CountDownLatch reached = new CountDownLatch(1);
        private final CountDownLatch released = new CountDownLatch(1);

        private Hold(int step) {
            this.step = step;
        }

        /** Waits up to {@code timeoutS} s for a stage to wait at the hold; true when one does. */
        boolean awaitReached(long timeoutS) throws InterruptedException {
            return reached.await(timeoutS, TimeUnit.SECONDS);
        }

        /** Lets every stage waiting at this hold go on, and any stage built later start without it. */
        void release() {
            synchronized (HeldGptStages.class) {
                if (armed == this) {
                    armed = null;
                }
            }
            released.countDown();
        }

        private void await() {
            reached.countDown();
            try {
                if (!released.await(HOLD_LIMIT_S, TimeUnit.SECONDS)) {
                    throw new IllegalStateException("a stage held at the start of step " + step + " was not released "
                        + "within " + HOLD_LIMIT_S + " s");
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while held at the start of step " + step, e);
            }
        }
    }

    /** GPT's stage, every call passed on; {@link #zeroGrads()} (the start of each step) waits at the hold. */
    private static final class HeldStage implements StageModule {
        private final StageModule gpt;
        private final Hold hold;
        private int steps;

        HeldStage(StageModule gpt, Hold hold) {
            this.gpt = gpt;
            this.hold = hold;
        }

        @Override
        public void zeroGrads() {
            if (hold != null && ++steps == hold.step) {
                hold.await();
            }
            gpt.zeroGrads();
        }

        @Override
        public boolean isFirst() {
            return gpt.isFirst();
        }

        @Override
        public Device device() {
            return gpt.device();
        }

        @Override
        public List<ParamSpec> parameters() {
            return gpt.parameters();
        }

        @Override
        public TensorParallelPlacement tensorParallelPlacement(int i) {
            return gpt.tensorParallelPlacement(i);
        }

        @Override
        public boolean isLast() {
            return gpt.isLast();
        }

        @Override
        public Tensor params() {
            return gpt.params();
        }

        @Override
        public Tensor grads() {
            return gpt.grads();
        }

        @Override
        public Tensor forward(int slot, Tensor input, Tensor targets) {
            return gpt.forward(slot, input, targets);
        }

        @Override
        public double loss(int slot) {
            return gpt.loss(slot);
        }

        @Override
        public Tensor backwardInput(int slot, Tensor gradOutput, float lossScale) {
            return gpt.backwardInput(slot, gradOutput, lossScale);
        }

        @Override
        public void backwardWeight(int slot) {
            gpt.backwardWeight(slot);
        }

        @Override
        public void backwardWeight(int slot, IntConsumer parameterDone) {
            gpt.backwardWeight(slot, parameterDone);
        }

        @Override
        public long activationBytes() {
            return gpt.activationBytes();
        }

        @Override
        public void recompute(Recompute mode) {
            gpt.recompute(mode);
        }

        @Override
        public long activationBytesLive() {
            return gpt.activationBytesLive();
        }

        @Override
        public long activationBytesShared() {
            return gpt.activationBytesShared();
        }

        @Override
        public GradientArena shardGradients(long bucketElements) {
            return gpt.shardGradients(bucketElements);
        }

        @Override
        public GradientArena shardGradients(long[] bucketStartElements, long[] bucketNumels) {
            return gpt.shardGradients(bucketStartElements, bucketNumels);
        }

        @Override
        public int gradientRowElements(int i) {
            return gpt.gradientRowElements(i);
        }

        @Override
        public long activationBytesPerSlot() {
            return gpt.activationBytesPerSlot();
        }

        @Override
        public Tensor backward(int slot, Tensor gradOutput, float lossScale) {
            return gpt.backward(slot, gradOutput, lossScale);
        }

        @Override
        public Tensor backward(int slot, Tensor gradOutput, float lossScale, IntConsumer parameterDone) {
            return gpt.backward(slot, gradOutput, lossScale, parameterDone);
        }

        @Override
        public void close() {
            gpt.close();
        }
    }
}
