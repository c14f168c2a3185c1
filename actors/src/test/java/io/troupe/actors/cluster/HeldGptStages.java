package io.troupe.actors.cluster;

import io.troupe.actors.api.JobEvent;
import io.troupe.actors.engine.ForwardingStageModule;
import io.troupe.models.ModelShape;
import io.troupe.models.StageModule;
import io.troupe.models.StageModuleFactory;
import io.troupe.models.gpt.GptStages;
import io.troupe.models.parallel.tp.TensorParallelGroup;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * Test fixture: GPT's stages ({@link GptStages}, every call passed on unchanged, so a job trains bitwise as with the
 * built-in factory) that a test can hold at the start of a step. {@link #holdAtStep} arms a {@link Hold}; each stage
 * built from then on (in any node of the test's JVM) waits at the start of its {@code step}-th step, counted from
 * the stage's build, before any of that step's work, until the hold is released. Every step needs every rank, so a
 * job whose stages are held cannot complete that step: a test can lose a node at an exact step, and release the
 * survivors once the coordinator has noticed. A stage waits at most {@link #HOLD_LIMIT_S} s, then fails its step.
 *
 * <p>Across processes (node JVMs a test starts), the hold is armed by system properties instead
 * ({@link #jvmOptions}): each stage the process builds while the release file is absent waits at the start of the
 * given step, prints {@link #HELD_LINE} (a test awaits it on the process's output) and polls for the release file
 * every 10 ms ({@link #release}), at most {@link #HOLD_LIMIT_S} s. A stage built once the file exists is not held, so
 * a recovery's stages run free; one built before (the coordinator may rebuild stages before the test learns of the
 * recovery) would wait only until the file appears, and at its own step counted from its build, well after.
 */
public final class HeldGptStages implements StageModuleFactory {
    /** The longest a stage waits for a release before it fails its step, in seconds. */
    static final long HOLD_LIMIT_S = 60;

    /** The start of the line a stage held across processes prints, followed by the step. */
    static final String HELD_LINE = "held-gpt-stages: held at the start of step ";

    private static final String STEP_PROPERTY = "troupe.test.held-gpt-stages.step";
    private static final String RELEASE_PROPERTY = "troupe.test.held-gpt-stages.release";

    private static volatile Hold armed;
    /** The release file this process has seen (stages built afterwards are not held), or null. */
    private static volatile Path releasedFileSeen;

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

    /**
     * The JVM options that arm a hold in a node process: each stage it builds while {@code releaseFile} is absent
     * waits at the start of its {@code step}-th step until {@link #release} creates the file.
     */
    static List<String> jvmOptions(int step, Path releaseFile) {
        if (step < 1) {
            throw new IllegalArgumentException("a stage is held at a step >= 1: step=" + step);
        }
        return List.of("-D" + STEP_PROPERTY + "=" + step, "-D" + RELEASE_PROPERTY + "=" + releaseFile.toAbsolutePath());
    }

    /** Releases the stages held across processes on {@code releaseFile} (creates it); idempotent, thread-safe. */
    static void release(Path releaseFile) {
        try {
            Files.createFile(releaseFile);
        } catch (FileAlreadyExistsException e) {
            // released already
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create the release file " + releaseFile, e);
        }
    }

    /**
     * The steps completed before the first {@link JobEvent.Recovering} of {@code events}: with a
     * hold, exactly the steps before it.
     */
    static int stepsBeforeTheFault(List<JobEvent> events) {
        int steps = 0;
        for (JobEvent e : events) {
            if (e instanceof JobEvent.Recovering) {
                return steps;
            }
            steps += e instanceof JobEvent.StepCompleted ? 1 : 0;
        }
        throw new AssertionError("no recovery: " + events);
    }

    @Override
    public StageModule create(Stage stage) {
        return new HeldStage(gpt.create(stage), holdFor(stage));
    }

    @Override
    public StageModule create(Stage stage, TensorParallelGroup group, boolean sequenceParallel) {
        return new HeldStage(gpt.create(stage, group, sequenceParallel), holdFor(stage));
    }

    /** The hold of a stage built now: this JVM's armed one, else the process's file hold, else none. */
    private static HoldPoint holdFor(Stage stage) {
        Hold h = armed;
        if (h != null) {
            return h;
        }
        String step = System.getProperty(STEP_PROPERTY);
        String release = System.getProperty(RELEASE_PROPERTY);
        if (step == null || release == null) {
            return null;
        }
        Path file = Path.of(release);
        if (file.equals(releasedFileSeen) || Files.exists(file)) {
            releasedFileSeen = file;
            return null;
        }
        int at;
        try {
            at = Integer.parseInt(step);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(STEP_PROPERTY + " must be a step >= 1: " + step, e);
        }
        if (at < 1) {
            throw new IllegalArgumentException(STEP_PROPERTY + " must be a step >= 1: " + step);
        }
        return new FileHold(at, file, "stage " + stage.index() + " of " + stage.count());
    }

    @Override
    public boolean supportsTensorParallel() {
        return gpt.supportsTensorParallel();
    }

    @Override
    public void checkTensorParallel(ModelShape model, int tp) {
        gpt.checkTensorParallel(model, tp);
    }

    /** Where a stage waits: at the start of its {@link #step()}-th step, until released. */
    private interface HoldPoint {
        int step();

        /** Waits until released; throws after {@link #HOLD_LIMIT_S} s. */
        void await();
    }

    /** One armed hold: stages wait at its step until {@link #release()}. Thread-safe. */
    static final class Hold implements HoldPoint {
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

        @Override
        public int step() {
            return step;
        }

        @Override
        public void await() {
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

    /**
     * A hold across processes: prints {@link #HELD_LINE} and polls for the release file every 10 ms (a file has no
     * event to wait on that survives a SIGSTOP of this process as simply), at most {@link #HOLD_LIMIT_S} s.
     */
    private record FileHold(int step, Path releaseFile, String stage) implements HoldPoint {
        @Override
        public void await() {
            System.out.println(HELD_LINE + step + " (" + stage + ", pid " + ProcessHandle.current().pid() + ")");
            System.out.flush();
            long deadlineNs = System.nanoTime() + TimeUnit.SECONDS.toNanos(HOLD_LIMIT_S);
            try {
                while (!Files.exists(releaseFile)) {
                    if (System.nanoTime() - deadlineNs > 0) {
                        throw new IllegalStateException(stage + " held at the start of step " + step + " found no "
                            + "release file " + releaseFile + " within " + HOLD_LIMIT_S + " s");
                    }
                    Thread.sleep(10);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while held at the start of step " + step, e);
            }
            releasedFileSeen = releaseFile;
        }
    }

    /** GPT's stage, every call passed on; {@link #zeroGrads()} (the start of each step) waits at the hold. */
    private static final class HeldStage extends ForwardingStageModule {
        private final HoldPoint hold;
        private int steps;

        HeldStage(StageModule gpt, HoldPoint hold) {
            super(gpt);
            this.hold = hold;
        }

        @Override
        public void zeroGrads() {
            if (hold != null && ++steps == hold.step()) {
                hold.await();
            }
            delegate.zeroGrads();
        }
    }
}
