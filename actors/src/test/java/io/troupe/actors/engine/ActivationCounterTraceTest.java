package io.troupe.actors.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.actors.trace.ChromeTraceWriter;
import io.troupe.models.data.Corpora;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.memory.MemoryOptions;
import io.troupe.models.optim.AdamWConfig;
import io.troupe.models.parallel.Layout;
import io.troupe.models.parallel.StagePartition;
import io.troupe.models.train.TrainConfig;
import java.io.StringWriter;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The trace's activation counter tracks: one per stage, sampled after every action, whose highest
 * value is the stage's activation high-water mark for its schedule (GPipe holds every micro-batch
 * on the first stage, 1F1B as many as there are stages).
 */
@Timeout(120)
class ActivationCounterTraceTest {
    private static final GptConfig MODEL = new GptConfig("tiny4", 256, 32, 4, 4, 16, 1e-5f);
    private static final int MICROBATCHES = 4;

    /** The highest counter value (MiB) of every stage's track in the last step's trace, by track name. */
    private static double[] peaks(String schedule, double[] slotMib) throws Exception {
        TrainConfig train = new TrainConfig(MODEL, 8, 1, 2, 3e-3f, 3e-4f, 2, 1.0f, 11, 0, 1, 0,
            AdamWConfig.defaults());
        Layout layout = Layout.parse("1x2", 1);
        PipelineJobSpec spec = new PipelineJobSpec(train, layout, schedule, MICROBATCHES,
            StagePartition.balanced(MODEL, 2), 1, 30_000).withMemory(MemoryOptions.NONE);
        try (LocalPipelineEngine engine = new LocalPipelineEngine(spec, Corpora.builtIn())) {
            engine.trainStep();
            engine.trainStep();
            StringWriter json = new StringWriter();
            ChromeTraceWriter.write(engine.timeline(), json);
            double[] peak = new double[2];
            int[] samples = new int[2];
            Matcher m = Pattern.compile("\\{\"name\":\"activations dp0 pp(\\d)\",\"ph\":\"C\",[^}]*\"args\":\\{\"MiB\":"
                + "([0-9.]+)\\}\\}").matcher(json.toString());
            while (m.find()) {
                int stage = Integer.parseInt(m.group(1));
                peak[stage] = Math.max(peak[stage], Double.parseDouble(m.group(2)));
                samples[stage]++;
            }
            for (int s = 0; s < 2; s++) {
                // one sample at the step's start and one after each of the stage's F and BW actions
                assertEquals(1 + 2 * MICROBATCHES, samples[s], schedule + " samples of stage " + s);
                slotMib[s] = engine.stage(0, s, 0).activationBytesPerSlot() / 1048576.0;
            }
            return peak;
        }
    }

    @Test
    void shouldShowEachStagesActivationHighWaterMarkBesideItsSchedule() throws Exception {
        double[] slot = new double[2];
        double[] gpipe = peaks("gpipe", slot);
        double[] oneFOneB = peaks("1f1b", slot);
        System.out.printf("activation peak per stage (MiB): gpipe %.3f / %.3f, 1f1b %.3f / %.3f (slot %.3f / %.3f)%n",
            gpipe[0], gpipe[1], oneFOneB[0], oneFOneB[1], slot[0], slot[1]);
        assertEquals(MICROBATCHES * slot[0], gpipe[0], 0.002, "gpipe holds every micro-batch on stage 0");
        assertEquals(2 * slot[0], oneFOneB[0], 0.002, "1f1b holds pp micro-batches on stage 0");
        assertEquals(slot[1], oneFOneB[1], 0.002, "1f1b holds one micro-batch on the last stage");
        assertTrue(gpipe[0] > oneFOneB[0]);
    }
}
