package io.troupe.actors.engine;

import io.troupe.models.ModelShape;
import io.troupe.models.ParamSpec;
import io.troupe.models.StageModule;
import io.troupe.models.StageModuleFactory;
import io.troupe.models.gpt.GptStages;
import io.troupe.models.memory.Recompute;
import io.troupe.models.parallel.tp.TensorParallelGroup;
import io.troupe.runtime.device.Device;
import io.troupe.runtime.tensor.Tensor;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.IntFunction;
import java.util.function.Supplier;

/**
 * Test fixture: GPT's stages ({@link GptStages}) whose build a test makes fail at a chosen point, to see what a
 * worker's failed build leaves behind. {@link #arm} sets a {@link Plan} for the builds from then on (in this JVM): the
 * {@code failAt}-th stage built (1-based, counted from the arming) throws, from its factory call or, once built, from
 * its {@link StageModule#recompute}; every stage built is kept ({@link #built}) with the number of times it was
 * closed, and a plan may make each stage's close throw after it has freed its tensors. Only what a build and a close
 * call is passed on (these stages never run a step). {@link #reset} disarms. Thread-safe.
 */
public final class BuildFailingStages implements StageModuleFactory {
    /**
     * Where the builds fail.
     *
     * @param failAt       the stage build (1-based, from the arming) that fails
     * @param inRecompute  whether that stage is built and then fails in {@link StageModule#recompute} (else its factory
     *                     call throws)
     * @param failure      what it throws (a {@link RuntimeException} or an {@link Error}), made anew each time
     * @param closeFailure what each stage's close throws once its tensors are freed, made anew from the stage's build
     *                     number (1-based, from the arming); null: none
     * @param onBuild      runs at the start of every factory call (a test looks at the worker's device threads there)
     */
    record Plan(int failAt, boolean inRecompute, Supplier<? extends Throwable> failure,
                IntFunction<? extends RuntimeException> closeFailure, Runnable onBuild) {
    }

    /** A stage built under a plan: its GPT stage and the number of times it was closed. */
    static final class Built {
        private final StageModule gpt;
        private final AtomicInteger closes = new AtomicInteger();

        private Built(StageModule gpt) {
            this.gpt = gpt;
        }

        /** Its flat parameter and gradient buffers. */
        List<Tensor> tensors() {
            return List.of(gpt.params(), gpt.grads());
        }

        int closes() {
            return closes.get();
        }
    }

    private static volatile Plan plan;
    private static final AtomicInteger BUILDS = new AtomicInteger();
    private static final List<Built> BUILT = new CopyOnWriteArrayList<>();

    private final GptStages gpt = new GptStages();

    /** Arms {@code p} for every build from now on, counting builds and keeping built stages afresh. */
    static void arm(Plan p) {
        BUILDS.set(0);
        BUILT.clear();
        plan = p;
    }

    /** Every stage built since the arming, in build order. */
    static List<Built> built() {
        return List.copyOf(BUILT);
    }

    /** Builds are GPT's again. */
    static void reset() {
        plan = null;
        BUILDS.set(0);
        BUILT.clear();
    }

    @Override
    public StageModule create(Stage stage) {
        return create(stage, TensorParallelGroup.single(), false);
    }

    @Override
    public StageModule create(Stage stage, TensorParallelGroup group, boolean sequenceParallel) {
        Plan p = plan;
        if (p == null) {
            return gpt.create(stage, group, sequenceParallel);
        }
        p.onBuild().run();
        int build = BUILDS.incrementAndGet();
        if (build == p.failAt() && !p.inRecompute()) {
            throw raise(p.failure().get());
        }
        Built b = new Built(gpt.create(stage, group, sequenceParallel));
        BUILT.add(b);
        return new FailingStage(b, p, build, build == p.failAt() && p.inRecompute());
    }

    @Override
    public boolean supportsTensorParallel() {
        return gpt.supportsTensorParallel();
    }

    @Override
    public void checkTensorParallel(ModelShape model, int tp) {
        gpt.checkTensorParallel(model, tp);
    }

    private static RuntimeException raise(Throwable t) {
        if (t instanceof RuntimeException e) {
            return e;
        }
        if (t instanceof Error e) {
            throw e;
        }
        throw new IllegalArgumentException("a plan's failure is a RuntimeException or an Error: " + t);
    }

    /** A built GPT stage: the calls of a build passed on, the plan's failures added. */
    private static final class FailingStage implements StageModule {
        private final Built built;
        private final Plan plan;
        private final int build;
        private final boolean failsRecompute;

        FailingStage(Built built, Plan plan, int build, boolean failsRecompute) {
            this.built = built;
            this.plan = plan;
            this.build = build;
            this.failsRecompute = failsRecompute;
        }

        @Override
        public void recompute(Recompute mode) {
            if (failsRecompute) {
                throw raise(plan.failure().get());
            }
            built.gpt.recompute(mode);
        }

        @Override
        public void close() {
            built.closes.incrementAndGet();
            built.gpt.close();
            if (plan.closeFailure() != null) {
                throw plan.closeFailure().apply(build);
            }
        }

        @Override
        public boolean isFirst() {
            return built.gpt.isFirst();
        }

        @Override
        public Device device() {
            return built.gpt.device();
        }

        @Override
        public List<ParamSpec> parameters() {
            return built.gpt.parameters();
        }

        @Override
        public boolean isLast() {
            return built.gpt.isLast();
        }

        @Override
        public Tensor params() {
            return built.gpt.params();
        }

        @Override
        public Tensor grads() {
            return built.gpt.grads();
        }

        @Override
        public void zeroGrads() {
            built.gpt.zeroGrads();
        }

        @Override
        public Tensor forward(int slot, Tensor input, Tensor targets) {
            return built.gpt.forward(slot, input, targets);
        }

        @Override
        public double loss(int slot) {
            return built.gpt.loss(slot);
        }

        @Override
        public Tensor backwardInput(int slot, Tensor gradOutput, float lossScale) {
            return built.gpt.backwardInput(slot, gradOutput, lossScale);
        }

        @Override
        public void backwardWeight(int slot) {
            built.gpt.backwardWeight(slot);
        }
    }
}
