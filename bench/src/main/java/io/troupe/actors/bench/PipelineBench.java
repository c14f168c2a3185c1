package io.troupe.actors.bench;

import com.typesafe.config.ConfigFactory;
import io.troupe.actors.api.JobEvent;
import io.troupe.actors.api.JobHandle;
import io.troupe.actors.api.TrainingJob;
import io.troupe.actors.api.Troupe;
import io.troupe.actors.cli.Options;
import io.troupe.actors.cli.TroupeCli;
import io.troupe.actors.cluster.NodeSettings;
import io.troupe.actors.cluster.TroupeNode;
import io.troupe.actors.schedule.CostModel;
import io.troupe.actors.schedule.PipelineSimulator;
import io.troupe.actors.schedule.Schedules;
import io.troupe.actors.schedule.SimulationResult;
import io.troupe.bench.BenchOptions;
import io.troupe.bench.Median;
import io.troupe.models.data.Batches;
import io.troupe.models.data.Corpora;
import io.troupe.models.gpt.Gpt;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.parallel.StagePartition;
import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.launch.ChildJvm;
import io.troupe.runtime.tensor.Tensor;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.atomic.AtomicReference;

/**
 * {@code scripts/bench pipeline [--steps N] [--warmup N] [--client] [--python PATH|none]}: the small GPT on a real
 * two-node cluster in two processes, one worker thread each, as the PyTorch references ran: this JVM is the
 * first node (worker 0, the coordinator and the host's media driver), a second node process joins it
 * and uses that driver, so tensors move over Aeron IPC. {@code --client} runs it in
 * {@code scripts/launch-local.sh}'s shape instead: a host driver process, two node processes, and
 * this JVM as a client that only submits (four processes on the machine):
 * (1) pp 2, 4 micro-batches, 1F1B, against a hand-written 2-process PyTorch pipeline; (2) dp 2, against
 * PyTorch DDP over Gloo, both the median of the timed steps after the warm-up, the references measured in the
 * same run after Troupe's ({@link PipelineTorchReference}; the interpreter as {@code scripts/bench step} finds
 * it: {@code --python}, {@code TROUPE_BENCH_PYTHON}, else the first python3 that imports torch; without one the
 * figures recorded on an Intel Xeon with PyTorch 1.13, 55.8 and 46.5 ms, stand in, and the bench says so);
 * (3) the measured bubble against the simulator's prediction for the F and B+W costs the two stages had in
 * the run (the traced last step, {@link TracedStep});
 * (4) the control overhead per scheduled action from the same trace. Each job's traced step is
 * written to {@code runs/bench-pipeline-<layout>/trace.json}. Last line: {@code pp2_ms=<x> dp2_ms=<x>
 * bubble_measured=<x> bubble_simulated=<x> overhead_us=<x> torch_pp2_ms=<x> torch_dp2_ms=<x> pp2_ratio=<x>
 * dp2_ratio=<x>} (the torch figures {@code -} and the ratios against the recorded ones when none was measured).
 */
public final class PipelineBench {
    /** PyTorch 1.13's pp 2 and dp 2 on an Intel Xeon (AVX-512), used only where no PyTorch runs here. */
    private static final double RECORDED_TORCH_PP2_MS = 55.8;
    private static final double RECORDED_TORCH_DP2_MS = 46.5;
    /** Untimed steps of the PyTorch references (no JIT to wait for). */
    private static final int TORCH_WARMUP = 10;
    private static final int MICROBATCHES = 4;
    /** The global batch of both jobs and of the references. */
    private static final int BATCH = 16;
    /** How long a node or driver process may take to start. */
    private static final long START_TIMEOUT_MS = 120_000;

    private PipelineBench() {
    }

    public static void main(String[] args) throws Exception {
        // Three JVMs on two cores keep their JIT compilers busy for about a minute; the figures are
        // taken in the steady state after that, as a Java service would run.
        String usage = "usage: scripts/bench pipeline [--steps N] [--warmup N] [--client] [--python PATH|none]";
        Options o = BenchOptions.parse(args, "pipeline", usage,
            Set.of("steps", "warmup", "python"), Set.of("client"));
        java.util.Optional<PipelineTorchReference> torch = io.troupe.models.bench.TorchBaseline
            .findPython(o.get("python", System.getenv("TROUPE_BENCH_PYTHON"))).map(PipelineTorchReference::new);
        int steps = o.getInt("steps", 100);
        int warmup = o.getInt("warmup", 150);
        boolean clientJvm = o.has("client");
        List<ChildJvm> nodes = new ArrayList<>();
        Run pp;
        Run dp;
        double[] alone;
        TracedStep t;
        SimulationResult sim;
        ChildJvm driver = null;
        TroupeNode client = null;
        try {
            if (clientJvm) {
                // launch-local.sh's shape: a host media driver process, two node processes, and
                // this JVM as a client that only submits (four processes on the two cores)
                String dir = (new java.io.File("/dev/shm").isDirectory() ? "/dev/shm"
                    : System.getProperty("java.io.tmpdir"))
                    + "/troupe-bench-" + ProcessHandle.current().pid();
                driver = ChildJvm.start(TroupeCli.class, List.of(), List.of("driver", "--dir", dir));
                driver.awaitLine("troupe driver: up", START_TIMEOUT_MS);
                List<String> shared = List.of("-Dtroupe.transport.aeron-dir=" + dir,
                    "-Dtroupe.transport.external-driver=true");
                ChildJvm first = startNode(shared, List.of("--role", "worker,coordinator"));
                nodes.add(first);
                String seed = awaitHostPort(first);
                ChildJvm second = startNode(shared, List.of("--role", "worker", "--seed", seed));
                nodes.add(second);
                awaitHostPort(second);
                NodeSettings s = NodeSettings.from(ConfigFactory.load()).withPort(0).withRoles(List.of(), 0)
                    .withSeeds(List.of(seed));
                client = TroupeNode.start(s, ConfigFactory.load(), null);
            } else {
                // two processes, as the PyTorch references ran: this JVM is the first node (worker 0,
                // the coordinator, and the host's media driver); the second node process joins it
                // and uses its driver, so the two workers exchange tensors over Aeron IPC
                NodeSettings s = NodeSettings.from(ConfigFactory.load()).withPort(0)
                    .withRoles(List.of("worker", "coordinator"), 1).withThreadsPerWorker(1);
                client = TroupeNode.start(s, ConfigFactory.load(), null);
                List<String> shared = List.of("-Dtroupe.transport.aeron-dir=" + client.transport().aeronDir(),
                    "-Dtroupe.transport.external-driver=true");
                ChildJvm second = startNode(shared, List.of("--role", "worker", "--seed", client.hostPort()));
                nodes.add(second);
                awaitHostPort(second);
            }
            pp = run(client, "1x2", MICROBATCHES, steps, warmup);
            dp = run(client, "2x1", 1, steps, warmup);
            alone = measureStagesAlone(GptConfig.small());
            // (3) and (4) from the traced step of the pp job: its own F and B+W per stage
            // (contention included) go into the simulator; what the ranks spent outside
            // compute and outside waiting for an input is the runtime's control overhead
            t = TracedStep.of(pp.trace());
            CostModel cost = CostModel.perStage(t.forwardUs(), t.backwardUs(), new double[] {0, 0});
            sim = new PipelineSimulator(cost).run(Schedules.oneFOneB(2, MICROBATCHES).asPolicy());
        } finally {
            // the node processes first: in the two-process shape they use this JVM's media driver
            for (ChildJvm p : nodes) {
                p.process().destroy();
            }
            for (ChildJvm p : nodes) {
                p.stop(20_000);
                p.close();
            }
            if (client != null) {
                try {
                    client.close();
                } catch (RuntimeException e) {
                    System.err.println("bench: node did not stop cleanly: " + e.getMessage());
                }
            }
            if (driver != null) {
                driver.stop(20_000);
                driver.close();
            }
        }
        // the references after every Troupe process has stopped (an idle node still runs its media driver)
        double torchPp = torch.map(r -> r.msPerStep("pp2", GptConfig.small(), BATCH, MICROBATCHES, steps,
            TORCH_WARMUP)).orElse(RECORDED_TORCH_PP2_MS);
        double torchDp = torch.map(r -> r.msPerStep("dp2", GptConfig.small(), BATCH, 1, steps, TORCH_WARMUP))
            .orElse(RECORDED_TORCH_DP2_MS);
        System.out.println(torch.map(r -> "references: " + r.describe() + ", measured in this run after Troupe's")
            .orElse("references: none measured (no python3 with torch found; set TROUPE_BENCH_PYTHON or --python"
                + " PATH): PyTorch 1.13's figures recorded on an Intel Xeon stand in, and the ratios hold only"
                + " there"));
        System.out.printf(Locale.ROOT, "%-34s %10s %12s %8s%n", "case", "ms/step", "reference", "ratio");
        System.out.printf(Locale.ROOT, "%-34s %10.2f %12.1f %8.3f%n", "pp2, 2 processes, 1f1b, m=4", pp.stepMs(),
            torchPp, pp.stepMs() / torchPp);
        System.out.printf(Locale.ROOT, "%-34s %10.2f %12.1f %8.3f%n", "dp2, 2 processes", dp.stepMs(), torchDp,
            dp.stepMs() / torchDp);
        System.out.printf(Locale.ROOT,
            "stage costs in the run (traced step): F=[%.0f, %.0f] us, B+W=[%.0f, %.0f] us; "
            + "alone in this process: F=[%.0f, %.0f] us, B+W=[%.0f, %.0f] us%n", t.forwardUs()[0], t.forwardUs()[1],
            t.backwardUs()[0], t.backwardUs()[1], alone[0], alone[1], alone[2], alone[3]);
        System.out.printf(Locale.ROOT,
            "bubble: measured %.4f (median over steps), simulated %.4f for the run's stage "
            + "costs (simulated schedule %.2f ms)%n", pp.bubble(), sim.bubbleFraction(), sim.stepUs() / 1e3);
        System.out.printf(Locale.ROOT, "control overhead per action: %.1f us (device thread outside compute and "
            + "input waits, sends included, over %d actions per rank); "
            + "input pick-up after arrival: median %.1f us%n",
            t.overheadUs(), 2 * MICROBATCHES, t.pickupUs());
        System.out.printf(Locale.ROOT,
            "traces: runs/bench-pipeline-1x2/trace.json, runs/bench-pipeline-2x1/trace.json%n");
        System.out.printf(Locale.ROOT,
            "pp2_ms=%.2f dp2_ms=%.2f bubble_measured=%.4f bubble_simulated=%.4f overhead_us=%.1f torch_pp2_ms=%s"
            + " torch_dp2_ms=%s pp2_ratio=%.3f dp2_ratio=%.3f%n",
            pp.stepMs(), dp.stepMs(), pp.bubble(), sim.bubbleFraction(), t.overheadUs(),
            torch.isPresent() ? String.format(Locale.ROOT, "%.2f", torchPp) : "-",
            torch.isPresent() ? String.format(Locale.ROOT, "%.2f", torchDp) : "-",
            pp.stepMs() / torchPp, dp.stepMs() / torchDp);
        System.exit(0);
    }

    /** Median step ms and median bubble of the timed steps, and the last step's trace. */
    private record Run(double stepMs, double bubble, JobEvent.StepTrace trace) {
    }

    private static Run run(TroupeNode client, String layout, int m, int steps, int warmup) throws Exception {
        TrainingJob job = TrainingJob.builder().model("small").layout(layout).schedule("1f1b").microbatches(m)
            .batchSize(BATCH).steps(warmup + steps).lr(1e-3f, 1e-4f, 2).gradClip(1f).seed(1337).validation(0, 1)
            .device("cpu").build();
        JobHandle h = Troupe.using(client).submit(job);
        AtomicReference<JobEvent.StepTrace> trace = new AtomicReference<>();
        h.onEvent(e -> {
            if (e instanceof JobEvent.StepTrace st) {
                trace.set(st);
            }
        });
        JobEvent end = h.await(Duration.ofMinutes(10));
        if (trace.get() == null) {
            throw new IllegalStateException("bench job " + layout + " sent no trace of its last step");
        } else {
            // the last step's timeline, for reading where the time went (chrome://tracing, Perfetto)
            java.nio.file.Path dir = java.nio.file.Path.of("runs", "bench-pipeline-" + layout);
            java.nio.file.Files.createDirectories(dir);
            io.troupe.actors.trace.ChromeTraceWriter.write(trace.get().timeline(), dir.resolve("trace.json"));
        }
        if (!(end instanceof JobEvent.Finished)) {
            throw new IllegalStateException("bench job " + layout + " ended with " + end);
        }
        List<JobEvent.StepCompleted> all = h.steps();
        double[] ms = all.subList(warmup, all.size()).stream().mapToDouble(JobEvent.StepCompleted::stepMs).toArray();
        double[] bub = all.subList(warmup, all.size()).stream().mapToDouble(JobEvent.StepCompleted::bubble).toArray();
        return new Run(Median.of(ms), Median.of(bub), trace.get());
    }

    /** F and B+W (µs) of both stages measured here, one thread, nothing else running: f0, f1, b0, b1. */
    private static double[] measureStagesAlone(GptConfig cfg) {
        StagePartition part = StagePartition.balanced(cfg, 2);
        int rows = BATCH / MICROBATCHES;
        double[] f = new double[2];
        double[] b = new double[2];
        try (CpuDevice dev = new CpuDevice(1);
             Gpt s0 = new Gpt(cfg, dev, rows, part.startBlock(0), part.endBlock(0), true, false);
             Gpt s1 = new Gpt(cfg, dev, rows, part.startBlock(1), part.endBlock(1), false, true)) {
            s0.initialize(1);
            s1.initialize(1);
            Batches batches = new Batches(Corpora.builtIn().train(), cfg.seqLen());
            int[] x = new int[rows * cfg.seqLen()];
            int[] y = new int[rows * cfg.seqLen()];
            double[][] samples = new double[4][30];
            for (int i = -10; i < 30; i++) {
                batches.fill(i + 10, 16, 0, rows, x, y);
                long t0 = System.nanoTime();
                Tensor h = s0.forwardTokens(0, x, y);
                long t1 = System.nanoTime();
                s1.forwardActivations(0, h, y);
                long t2 = System.nanoTime();
                Tensor g = s1.backward(0, null, 1f / (16 * cfg.seqLen()));
                long t3 = System.nanoTime();
                s0.backward(0, g, 1f);
                long t4 = System.nanoTime();
                if (i >= 0) {
                    samples[0][i] = (t1 - t0) / 1e3;
                    samples[1][i] = (t2 - t1) / 1e3;
                    samples[2][i] = (t4 - t3) / 1e3;
                    samples[3][i] = (t3 - t2) / 1e3;
                }
            }
            f[0] = Median.of(samples[0]);
            f[1] = Median.of(samples[1]);
            b[0] = Median.of(samples[2]);
            b[1] = Median.of(samples[3]);
        }
        return new double[] {f[0], f[1], b[0], b[1]};
    }

    private static ChildJvm startNode(List<String> jvmArgs, List<String> extra) throws Exception {
        List<String> args = new ArrayList<>(Arrays.asList("node", "--port", "0", "--workers", "1", "--threads", "1"));
        args.addAll(extra);
        return ChildJvm.start(TroupeCli.class, jvmArgs, args);
    }

    private static String awaitHostPort(ChildJvm node) throws InterruptedException {
        String line = node.awaitLine("troupe node: up at ", START_TIMEOUT_MS);
        return line.substring("troupe node: up at ".length(), line.indexOf(','));
    }
}
