package io.troupe.actors.bench;

import com.typesafe.config.ConfigFactory;
import io.troupe.actors.cluster.JobEvent;
import io.troupe.actors.cluster.JobHandle;
import io.troupe.actors.cluster.JobRequest;
import io.troupe.actors.cluster.NodeSettings;
import io.troupe.actors.cluster.TroupeNode;
import io.troupe.actors.schedule.CostModel;
import io.troupe.actors.schedule.PipelineSimulator;
import io.troupe.actors.schedule.Schedules;
import io.troupe.actors.schedule.SimulationResult;
import io.troupe.models.data.Batches;
import io.troupe.models.data.Corpora;
import io.troupe.models.gpt.Gpt;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.parallel.StagePartition;
import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.tensor.Tensor;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.TimeUnit;

/**
 * {@code scripts/bench pipeline [--steps N] [--warmup N]}: the small GPT on a real two-node cluster
 * (two worker processes on this machine, one thread each, sharing the host's media driver as
 * {@code scripts/launch-local.sh} runs them; this JVM joins as a client):
 * (1) pp 2, 4 micro-batches, 1F1B, against a hand-written 2-process PyTorch 1.13 pipeline measured
 * here at 55.8 ms/step; (2) dp 2, against PyTorch DDP over Gloo at 46.5 ms/step; (3) the measured
 * bubble against the simulator's prediction for F/B costs of the same two stages measured in this
 * process; (4) the control overhead per scheduled action, (measured step − simulated step) / actions
 * of one rank. Last line: {@code pp2_ms=<x> dp2_ms=<x> bubble_measured=<x> bubble_simulated=<x> overhead_us=<x>}.
 */
public final class PipelineBench {
    private static final double TORCH_PP2_MS = 55.8;
    private static final double TORCH_DP2_MS = 46.5;
    private static final int MICROBATCHES = 4;

    private PipelineBench() {
    }

    public static void main(String[] args) throws Exception {
        int steps = 20;
        int warmup = 5;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--steps" -> steps = Integer.parseInt(args[++i]);
                case "--warmup" -> warmup = Integer.parseInt(args[++i]);
                default -> throw new IllegalArgumentException("unknown option '" + args[i]
                    + "': usage: bench pipeline [--steps N] [--warmup N]");
            }
        }
        List<Process> nodes = new ArrayList<>();
        Process driver = null;
        try {
            // One media driver for the host, as scripts/launch-local.sh runs it: the two worker
            // processes exchange tensors over Aeron IPC.
            String dir = (new java.io.File("/dev/shm").isDirectory() ? "/dev/shm" : System.getProperty("java.io.tmpdir"))
                + "/troupe-bench-" + ProcessHandle.current().pid();
            driver = new ProcessBuilder(io.troupe.runtime.launch.JavaCommand.of(io.troupe.actors.cli.TroupeCli.class, List.of(),
                List.of("driver", "--dir", dir))).redirectErrorStream(true).start();
            awaitLine(driver, "troupe driver: up");
            List<String> shared = List.of("-Dtroupe.transport.aeron-dir=" + dir, "-Dtroupe.transport.external-driver=true");
            Process first = startNode(shared, List.of("--role", "worker,coordinator"));
            nodes.add(first);
            String seed = awaitHostPort(first);
            Process second = startNode(shared, List.of("--role", "worker", "--seed", seed));
            nodes.add(second);
            awaitHostPort(second);
            NodeSettings s = NodeSettings.from(ConfigFactory.load()).withPort(0).withRoles(List.of(), 0).withSeeds(List.of(seed));
            try (TroupeNode client = TroupeNode.start(s, ConfigFactory.load(), null)) {
                double[] pp = run(client, "1x2", MICROBATCHES, steps, warmup);
                double[] dp = run(client, "2x1", 1, steps, warmup);
                double[] sim = simulate(GptConfig.small());
                double overheadUs = (pp[0] - sim[1] / 1e3) * 1e3 / (2.0 * MICROBATCHES);
                System.out.printf(Locale.ROOT, "%-34s %10s %12s %8s%n", "case", "ms/step", "reference", "ratio");
                System.out.printf(Locale.ROOT, "%-34s %10.2f %12.1f %8.3f%n", "pp2, 2 processes, 1f1b, m=4", pp[0], TORCH_PP2_MS,
                    pp[0] / TORCH_PP2_MS);
                System.out.printf(Locale.ROOT, "%-34s %10.2f %12.1f %8.3f%n", "dp2, 2 processes", dp[0], TORCH_DP2_MS,
                    dp[0] / TORCH_DP2_MS);
                System.out.printf(Locale.ROOT, "bubble: measured %.4f (median over steps), simulated %.4f for stage costs "
                    + "F=[%.0f, %.0f] us, B+W=[%.0f, %.0f] us; simulated step %.2f ms%n", pp[1], sim[0], sim[2], sim[3], sim[4],
                    sim[5], sim[1] / 1e3);
                System.out.printf(Locale.ROOT, "control overhead per action: %.1f us ((measured - simulated step) / %d actions)%n",
                    overheadUs, 2 * MICROBATCHES);
                System.out.printf(Locale.ROOT, "pp2_ms=%.2f dp2_ms=%.2f bubble_measured=%.4f bubble_simulated=%.4f overhead_us=%.1f%n",
                    pp[0], dp[0], pp[1], sim[0], overheadUs);
            }
        } finally {
            for (Process p : nodes) {
                p.destroy();
            }
            for (Process p : nodes) {
                if (!p.waitFor(20, TimeUnit.SECONDS)) {
                    p.destroyForcibly();
                }
            }
            if (driver != null) {
                driver.destroy();
                if (!driver.waitFor(20, TimeUnit.SECONDS)) {
                    driver.destroyForcibly();
                }
            }
        }
        System.exit(0);
    }

    /** Median step ms and median bubble of the timed steps. */
    private static double[] run(TroupeNode client, String layout, int m, int steps, int warmup) throws Exception {
        JobRequest job = new JobRequest("small", layout, 1, "1f1b", m, 16, warmup + steps, 1e-3f, 1e-4f, 2, 1.0f, 1337, "", "",
            0, "", 60_000);
        JobHandle h = client.submit(job);
        JobEvent end = h.await(Duration.ofMinutes(10));
        if (!(end instanceof JobEvent.Finished)) {
            throw new IllegalStateException("bench job " + layout + " ended with " + end);
        }
        List<JobEvent.StepCompleted> all = h.steps();
        double[] ms = all.subList(warmup, all.size()).stream().mapToDouble(JobEvent.StepCompleted::stepMs).toArray();
        double[] bub = all.subList(warmup, all.size()).stream().mapToDouble(JobEvent.StepCompleted::bubble).toArray();
        return new double[] {median(ms), median(bub)};
    }

    /** Measures F and B+W of both stages here (1 thread each), then simulates 1F1B on them. */
    private static double[] simulate(GptConfig cfg) {
        StagePartition part = StagePartition.balanced(cfg, 2);
        int rows = 16 / MICROBATCHES;
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
            f[0] = median(samples[0]);
            f[1] = median(samples[1]);
            b[0] = median(samples[2]);
            b[1] = median(samples[3]);
        }
        CostModel cost = CostModel.perStage(f, b, new double[] {0, 0});
        SimulationResult r = new PipelineSimulator(cost).run(Schedules.oneFOneB(2, MICROBATCHES).asPolicy());
        return new double[] {r.bubbleFraction(), r.stepUs(), f[0], f[1], b[0], b[1]};
    }

    private static Process startNode(List<String> jvmArgs, List<String> extra) throws Exception {
        List<String> args = new ArrayList<>(Arrays.asList("node", "--port", "0", "--workers", "1", "--threads", "1"));
        args.addAll(extra);
        List<String> cmd = io.troupe.runtime.launch.JavaCommand.of(io.troupe.actors.cli.TroupeCli.class, jvmArgs, args);
        return new ProcessBuilder(cmd).redirectErrorStream(true).start();
    }

    private static String awaitHostPort(Process p) throws Exception {
        String line = awaitLine(p, "troupe node: up at ");
        return line.substring("troupe node: up at ".length(), line.indexOf(','));
    }

    /** Reads the child's output until a line starting with {@code prefix}, then keeps draining it. */
    private static String awaitLine(Process p, String prefix) throws Exception {
        BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
        String line;
        while ((line = r.readLine()) != null) {
            if (line.startsWith(prefix)) {
                Thread drain = new Thread(() -> {
                    try {
                        while (r.readLine() != null) {
                            // keep the child's pipe from filling
                        }
                    } catch (java.io.IOException ignored) {
                        // the child ended
                    }
                }, "node-output");
                drain.setDaemon(true);
                drain.start();
                return line;
            }
        }
        throw new IllegalStateException("child process ended before '" + prefix + "' (exit " + p.waitFor() + ")");
    }

    private static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    }
}
