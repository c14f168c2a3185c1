package io.troupe.actors.bench;

import io.troupe.actors.cli.Options;
import io.troupe.actors.engine.LocalPipelineEngine;
import io.troupe.actors.engine.PipelineJobSpec;
import io.troupe.bench.BenchOptions;
import io.troupe.bench.Median;
import io.troupe.models.data.Corpora;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.memory.MemoryOptions;
import io.troupe.models.memory.RankMemory;
import io.troupe.models.parallel.Layout;
import io.troupe.models.parallel.StagePartition;
import io.troupe.models.train.TrainConfig;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * {@code scripts/bench memory [--model big] [--steps N] [--warmup N] [--threads T]}: the model on
 * layout 2x1x1 (two data-parallel replicas in this process, the in-process engine), one engine per
 * configuration (ZeRO stage 0, 1, 2 without recomputation; zero 0 with selective and with full
 * recomputation),
 * built side by side and stepped in turn (so load drifts hit every configuration alike). Per rank
 * it reports the bytes held for the optimizer's moments, the
 * gradients and the activations after the timed steps ({@link RankMemory}, measured from the
 * allocated buffers), and the median step time. Each figure is a ratio against zero 0 measured in
 * the same run (recomputation against recompute none). It also prints the process CPU time per step
 * (median) and its ratios, which a loaded machine disturbs less than the wall clock.
 * Last line: {@code opt_ratio_zero1=.. grad_ratio_zero2=.. act_ratio_full=.. step_ratio_zero1=..
 * step_ratio_zero2=.. step_ratio_full=.. act_ratio_selective=.. step_ratio_selective=..}.
 */
public final class MemoryBench {
    private MemoryBench() {
    }

    public static void main(String[] args) {
        Options o = BenchOptions.parse(args, "memory",
            "usage: scripts/bench memory [--model big] [--steps N] [--warmup N] [--threads T]",
            Set.of("model", "steps", "warmup", "threads"), Set.of());
        String model = o.get("model", "big");
        int steps = o.getInt("steps", 10);
        int warmup = o.getInt("warmup", 3);
        int threads = o.getInt("threads", 1);
        GptConfig cfg = GptConfig.preset(model);
        int total = warmup + steps;
        TrainConfig train = new TrainConfig(cfg, cfg.defaultBatchSize(), 1, total, 1e-3f, 1e-4f, 1, 1f, 7, 0, 1, 0,
            io.troupe.models.optim.AdamWConfig.defaults());
        Layout layout = Layout.parse("2x1x1", 1);
        Corpora data = Corpora.builtIn();
        System.out.printf(Locale.ROOT, "memory bench: %s GPT (d_model %d, %d layers, seq %d, batch %d), layout %s, "
            + "%d warm-up + %d timed steps, %d thread(s) per worker%n", cfg.name(), cfg.dModel(), cfg.nLayer(),
            cfg.seqLen(),
            cfg.defaultBatchSize(), layout, warmup, steps, threads);
        MemoryOptions selective = new MemoryOptions(0, io.troupe.models.memory.Recompute.SELECTIVE,
            io.troupe.models.memory.GradCompression.NONE);
        MemoryOptions full = new MemoryOptions(0, io.troupe.models.memory.Recompute.FULL,
            io.troupe.models.memory.GradCompression.NONE);
        MemoryOptions[] configs = {MemoryOptions.NONE, MemoryOptions.NONE.withZero(1), MemoryOptions.NONE.withZero(2),
            selective, full};
        int[] zeros = {0, 1, 2, 3, 4}; // indices into configs
        List<LocalPipelineEngine> engines = new ArrayList<>();
        try {
            for (int z : zeros) {
                PipelineJobSpec spec = new PipelineJobSpec(train, layout, "1f1b", 1,
                    StagePartition.balanced(cfg, layout.modelStages()), threads, 600_000)
                    .withMemory(configs[z]);
                engines.add(new LocalPipelineEngine(spec, data));
            }
            List<List<Double>> ms = new ArrayList<>();
            List<List<Double>> cpuMs = new ArrayList<>();
            for (int k = 0; k < zeros.length; k++) {
                ms.add(new ArrayList<>());
                cpuMs.add(new ArrayList<>());
            }
            com.sun.management.OperatingSystemMXBean os = (com.sun.management.OperatingSystemMXBean)
                java.lang.management.ManagementFactory.getOperatingSystemMXBean();
            for (int s = 0; s < total; s++) {
                for (int k = 0; k < zeros.length; k++) {
                    long cpu0 = os.getProcessCpuTime();
                    double stepMs = engines.get(k).trainStep().step().stepMs();
                    long cpu1 = os.getProcessCpuTime();
                    if (s >= warmup) {
                        ms.get(k).add(stepMs);
                        cpuMs.get(k).add((cpu1 - cpu0) / 1e6);
                    }
                }
            }
            RankMemory[] mem = new RankMemory[zeros.length];
            double[] med = new double[zeros.length];
            double[] cpu = new double[zeros.length];
            for (int k = 0; k < zeros.length; k++) {
                mem[k] = engines.get(k).memoryPerRank();
                med[k] = Median.of(ms.get(k));
                cpu[k] = Median.of(cpuMs.get(k));
                System.out.printf(Locale.ROOT, "zero %d, recompute %s: %s; step %.1f ms, process CPU %.1f ms per step "
                    + "(medians)%n", configs[k].zero(), configs[k].recompute().optionName(), mem[k].line(), med[k],
                    cpu[k]);
            }
            // CPU time is what the step computes, whatever else the machine runs; the wall-clock ratios are the goals.
            System.out.printf(Locale.ROOT, "cpu_ratio_zero1=%.3f cpu_ratio_zero2=%.3f cpu_ratio_full=%.3f%n",
                cpu[1] / cpu[0], cpu[2] / cpu[0], cpu[4] / cpu[0]);
            System.out.printf(Locale.ROOT, "opt_ratio_zero1=%.3f grad_ratio_zero2=%.3f act_ratio_full=%.3f "
                    + "step_ratio_zero1=%.3f step_ratio_zero2=%.3f step_ratio_full=%.3f act_ratio_selective=%.3f "
                    + "step_ratio_selective=%.3f%n",
                (double) mem[1].optimizerBytes() / mem[0].optimizerBytes(),
                (double) mem[2].gradBytes() / mem[0].gradBytes(),
                (double) mem[4].activationBytes() / mem[0].activationBytes(),
                med[1] / med[0], med[2] / med[0], med[4] / med[0],
                (double) mem[3].activationBytes() / mem[0].activationBytes(), med[3] / med[0]);
        } finally {
            for (LocalPipelineEngine e : engines) {
                e.close();
            }
        }
    }
}
