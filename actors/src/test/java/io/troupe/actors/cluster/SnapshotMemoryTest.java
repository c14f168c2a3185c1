package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.actors.cluster.snapshot.DirectMemory;
import io.troupe.actors.cluster.snapshot.ShardSnapshots;
import io.troupe.actors.engine.PipelineJobSpec;
import io.troupe.actors.engine.StageWorker;
import io.troupe.models.parallel.tp.LocalTensorParallelGroup;
import io.troupe.models.parallel.tp.TensorParallelGroup;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The coordinator's accounting of snapshot slots per node ({@link SnapshotMemory}) and the JVM's direct memory. */
class SnapshotMemoryTest {
    private static final String A = "pekko://troupe@h:1#1";
    private static final String B = "pekko://troupe@h:2#2";

    private static JobRequest job(String model, String layout, int virtualStages, String schedule, int zero) {
        return job(model, layout, virtualStages, schedule, zero, false);
    }

    private static JobRequest job(String model, String layout, int virtualStages, String schedule, int zero,
                                  boolean sequenceParallel) {
        return new JobRequest(model, layout, virtualStages, schedule, 2, 12, 10, 3e-3f, 3e-4f, 2, 1.0f, 9, "", "", 0,
            "", 60_000, 0, 1, 1L << 20, "cpu", "", zero, "none", "none", sequenceParallel);
    }

    /**
     * The bytes a worker's own snapshot takes: its real stage's chunks, as the worker captures them; under tp > 1
     * the chunks of tp member {@code tpIndex}, built in a group of the layout's tp members (building issues no
     * collective, so the other members need not be built).
     */
    private static long capturedBytes(PipelineJobSpec spec, int dpIndex, int ppIndex, int tpIndex) {
        int tp = spec.layout().tp();
        TensorParallelGroup group = tp == 1 ? TensorParallelGroup.single()
            : LocalTensorParallelGroup.create(tp, 1_000).get(tpIndex);
        try (StageWorker w = new StageWorker(spec, dpIndex, ppIndex, group, 9)) {
            List<ShardSnapshots.ChunkState> chunks = new ArrayList<>();
            for (int c = 0; c < w.chunks(); c++) {
                chunks.add(new ShardSnapshots.ChunkState(w.chunk(c).params(), w.optimizer(c).firstMoment(),
                    w.optimizer(c).secondMoment(), 0));
            }
            return ShardSnapshots.lengthBytes(chunks);
        }
    }

    @Test
    void shouldPredictEachRanksSnapshotAsItsWorkerCapturesIt() {
        for (JobRequest job : List.of(job("small", "1x2", 1, "1f1b", 0), job("small", "2x2", 2, "interleaved", 1),
            job("tiny", "3x1", 1, "1f1b", 1), job("tiny", "1x1x2", 1, "1f1b", 0), job("tiny", "2x1x2", 1, "1f1b", 1),
            job("tiny", "1x2x2", 1, "1f1b", 0, true))) {
            PipelineJobSpec spec = JobSpecs.toSpec(job, 1);
            long[] predicted = SnapshotMemory.snapshotBytes(spec);
            var l = spec.layout();
            long[] captured = new long[l.worldSize()];
            for (int r = 0; r < l.worldSize(); r++) {
                captured[r] = capturedBytes(spec, l.dpIndex(r), l.ppIndex(r), l.tpIndex(r));
                System.out.printf("%s v%d zero %d sp %b rank %d: predicted %d, captured %d bytes%n", job.layout(),
                    job.virtualStages(), job.zero(), job.sequenceParallel(), r, predicted[r], captured[r]);
            }
            assertArrayEquals(captured, predicted, job.layout() + " zero " + job.zero() + " sp "
                + job.sequenceParallel());
            if (l.tp() > 1 && !job.sequenceParallel()) {
                long whole = SnapshotMemory.snapshotBytes(JobSpecs.toSpec(job.withLayout(l.dp() + "x" + l.pp(),
                    job.microbatches()), 1))[0];
                assertTrue(captured[0] < whole, job.layout() + ": a tp member holds part of its stage, " + captured[0]
                    + " of " + whole + " bytes");
            }
        }
    }

    @Test
    void shouldNotPredictTheSnapshotsOfStageModulesItDoesNotKnow() {
        JobRequest custom = new JobRequest("tiny", "1x2", 1, "1f1b", 2, 8, 10, 3e-3f, 3e-4f, 2, 1.0f, 9, "", "", 0, "",
            60_000, 0, 1, 1L << 20, "cpu", "io.troupe.examples.ResidualMlpModel", 0, "none", "none");
        assertNull(SnapshotMemory.snapshotBytes(JobSpecs.toSpec(custom, 1)));
    }

    /** The worked example of {@link SnapshotMemory}: replicas send no copy, pipeline stages keep each other's. */
    @Test
    void shouldCountTwoSlotsOfEachOwnSnapshotAndOfEachCopyANodeKeeps() {
        long gib3 = 3L << 30;
        Map<String, Long> replicas = SnapshotMemory.slotBytesByDomain(List.of(A, B), new long[] {gib3, gib3},
            new int[] {-1, -1});
        assertEquals(Map.of(A, 6L << 30, B, 6L << 30), replicas);
        Map<String, Long> stages = SnapshotMemory.slotBytesByDomain(List.of(A, B), new long[] {gib3, gib3},
            SnapshotRestorePlanner.buddies(List.of(A, B)));
        assertEquals(Map.of(A, 12L << 30, B, 12L << 30), stages);
        // ranks 0 and 1 on A send to rank 2 on B; rank 2 sends to rank 0: B keeps two copies, A one
        Map<String, Long> uneven = SnapshotMemory.slotBytesByDomain(List.of(A, A, B), new long[] {100, 200, 400},
            SnapshotRestorePlanner.buddies(List.of(A, A, B)));
        assertEquals(2 * (100 + 200) + 2 * 400, uneven.get(A));
        assertEquals(2 * 400 + 2 * (100 + 200), uneven.get(B));
        assertEquals(Map.of(A, 1400L), SnapshotMemory.slotBytesByDomain(List.of(A, A), new long[] {300, 400},
            new int[] {-1, -1}), "one node: its own slots only");
    }

    @Test
    void shouldNameEveryNodeWhoseSlotsPassItsLimitAndCheckNoneUnknown() {
        Map<String, Long> needed = new LinkedHashMap<>();
        needed.put(A, 1000L);
        needed.put(B, 2000L);
        assertTrue(SnapshotMemory.shortfalls(needed, Map.of(A, 1000L, B, 2000L), Map.of()).isEmpty(),
            "exactly enough fits");
        assertTrue(SnapshotMemory.shortfalls(needed, Map.of(A, DirectMemory.UNKNOWN), Map.of()).isEmpty(),
            "unknown: not checked");
        List<SnapshotMemory.Shortfall> s = SnapshotMemory.shortfalls(needed, Map.of(A, 999L, B, 2000L), Map.of());
        assertEquals(List.of(new SnapshotMemory.Shortfall(List.of(A), 1000, 999)), s);
        String why = SnapshotMemory.describe(s);
        assertTrue(why.contains("node " + A) && why.contains("1000 bytes") && why.contains("999 bytes")
            && why.contains("-XX:MaxDirectMemorySize"), why);
    }

    @Test
    void shouldTakeTheLeastAnyWorkerOfANodeAdvertised() {
        Map<String, Long> limits = SnapshotMemory.limitByDomain(List.of(
            new WorkerDescription(A, "d", "c", "cpu", 0, "s", 20, 5000),
            new WorkerDescription(A, "d", "c", "cpu", 1, "s", 20, DirectMemory.UNKNOWN),
            new WorkerDescription(A, "d", "c", "cpu", 2, "s", 20, 4000),
            new WorkerDescription(B, "d", "c", "cpu", 0, "s", 20)));
        assertEquals(Map.of(A, 4000L, B, DirectMemory.UNKNOWN), limits);
    }

    @Test
    void shouldShareOneLimitAmongTheNodesOfOneJvm() {
        Map<String, Long> limits = SnapshotMemory.limitByDomain(List.of(
            new WorkerDescription(A, "d", "c", "cpu", 0, "s", 20, 5000, "jvm-1"),
            new WorkerDescription(B, "d", "c", "cpu", 0, "s", 20, 4500, "jvm-1")));
        assertEquals(Map.of("jvm-1", 4500L), limits, "one limit, the least either node saw");
        Map<String, Long> needed = SnapshotMemory.slotBytesByDomain(List.of("jvm-1", "jvm-1"), new long[] {1000, 1500},
            new int[] {1, 0});
        assertEquals(Map.of("jvm-1", 10000L), needed, "both nodes' slots: two of each snapshot, two of each copy");
        List<SnapshotMemory.Shortfall> s = SnapshotMemory.shortfalls(needed, limits, Map.of("jvm-1", List.of(A, B)));
        assertEquals(List.of(new SnapshotMemory.Shortfall(List.of(A, B), 10000, 4500)), s);
        String why = SnapshotMemory.describe(s);
        assertTrue(why.startsWith("nodes " + A + ", " + B + " (one JVM") && why.contains("10000 bytes")
            && why.contains("4500 bytes") && why.contains("-XX:MaxDirectMemorySize"), why);
    }

    @Test
    void shouldReadThisJvmsDirectMemoryLimitAsTheJdkSetsIt() {
        long flag = -1;
        for (String arg : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
            if (arg.startsWith("-XX:MaxDirectMemorySize=")) {
                flag = parseSize(arg.substring("-XX:MaxDirectMemorySize=".length()));
            }
        }
        long limit = DirectMemory.limitBytes();
        System.out.printf("direct memory: limit %d, flag %d, max heap %d, used %d%n", limit, flag,
            Runtime.getRuntime().maxMemory(), DirectMemory.usedBytes());
        assertEquals(flag > 0 ? flag : Runtime.getRuntime().maxMemory(), limit);
        assertTrue(DirectMemory.usedBytes() >= 0);
        long available = DirectMemory.availableForSnapshotsBytes();
        assertTrue(available >= 0 && available <= Math.max(0, limit - DirectMemory.RESERVE_BYTES), "" + available);
    }

    private static long parseSize(String v) {
        char unit = Character.toLowerCase(v.charAt(v.length() - 1));
        int shift = switch (unit) {
            case 'k' -> 10;
            case 'm' -> 20;
            case 'g' -> 30;
            default -> 0;
        };
        return Long.parseLong(shift == 0 ? v : v.substring(0, v.length() - 1)) << shift;
    }
}
