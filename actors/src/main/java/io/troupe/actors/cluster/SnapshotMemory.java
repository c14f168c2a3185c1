package io.troupe.actors.cluster;

import io.troupe.actors.cluster.snapshot.DirectMemory;
import io.troupe.actors.cluster.snapshot.SnapshotDescriptor;
import io.troupe.actors.engine.PipelineJobSpec;
import io.troupe.actors.engine.StageModuleFactories;
import io.troupe.collectives.Communicator;
import io.troupe.models.parallel.Layout;
import io.troupe.models.parallel.ParallelParameterLayout;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * What an epoch's in-memory snapshots take on each node, against the direct memory each node can give them
 * ({@link WorkerDescription#snapshotMemoryBytes()}). A rank keeps {@value #SLOTS} slots of its own snapshot,
 * and a rank that is another's buddy {@value #SLOTS} slots of each copy it keeps; a slot is as long as the
 * snapshot ({@link SnapshotDescriptor#lengthBytes}). A node's slots are those of every rank it hosts.
 *
 * <p>Worked example: a 2x1 job whose replicas each hold 1 GiB of parameters, on two nodes, ZeRO off. Each
 * rank's snapshot is its parameters and both moments, 3 GiB; each replica's snapshot is the other's copy, so
 * no copy is sent and each node needs 2 x 3 = 6 GiB. As 1x2 (two pipeline stages of 1 GiB each) every rank
 * also keeps its buddy's copy: 2 x 3 + 2 x 3 = 12 GiB per node.
 *
 * <p>Plain data, no threads.
 */
final class SnapshotMemory {
    /** Slots of each snapshot a rank keeps (its own, or a copy): the committed one and the one being written. */
    static final int SLOTS = 2;

    private SnapshotMemory() {
    }

    /** A node, or the nodes of one JVM, whose direct memory cannot hold their snapshot slots. */
    record Shortfall(List<String> nodes, long neededBytes, long limitBytes) {
        /** The reason, as the coordinator logs it and the submitter sees it. */
        String describe() {
            boolean one = nodes.size() == 1;
            String who = one ? "node " + nodes.get(0) + " needs "
                : "nodes " + String.join(", ", nodes) + " (one JVM, sharing its direct memory) need ";
            return who + neededBytes + " bytes (" + mib(neededBytes) + ") of direct memory for "
                + (one ? "its in-memory snapshot slots, but its limit"
                    : "their in-memory snapshot slots, but its limit")
                + " leaves them " + limitBytes + " bytes (" + mib(limitBytes) + "): raise the JVM's "
                + "-XX:MaxDirectMemorySize (by default the maximum heap) on " + (one ? "that node" : "that JVM");
        }

        private static String mib(long bytes) {
            return String.format(java.util.Locale.ROOT, "%.1f MiB", bytes / 1048576.0);
        }
    }

    /**
     * Bytes of each rank's snapshot under {@code spec}: per model chunk its parameters and both AdamW moments
     * (under ZeRO the rank's segment of them), plus the descriptor's header and chunk table. Null when the
     * job's stage modules are not the built-in GPT, whose parameters only the workers know (they report their
     * snapshot's size when built, {@link CoordinatorActor.Ready#snapshotBytes()}).
     */
    static long[] snapshotBytes(PipelineJobSpec spec) {
        if (!StageModuleFactories.isBuiltIn(spec.moduleFactory())) {
            return null;
        }
        Layout l = spec.layout();
        ParallelParameterLayout params = ParallelParameterLayout.gpt(spec.train().model(), spec.partition(),
            spec.sequenceParallel());
        long[] bytes = new long[l.worldSize()];
        for (int r = 0; r < bytes.length; r++) {
            long floats = 0;
            for (int v = 0; v < l.virtualStages(); v++) {
                long numel = params.local(v * l.pp() + l.ppIndex(r), l.tp(), l.tpIndex(r)).numel();
                long moments = spec.zeroSharded()
                    ? Communicator.segmentStart(numel, l.dp(), l.dpIndex(r) + 1)
                    - Communicator.segmentStart(numel, l.dp(), l.dpIndex(r))
                    : numel;
                floats += numel + 2 * moments;
            }
            bytes[r] = SnapshotDescriptor.lengthBytes(l.virtualStages(), floats);
        }
        return bytes;
    }

    /**
     * Per memory domain ({@link WorkerDescription#memoryKey()}: a JVM, or a node alone), in the order of their
     * first rank, the bytes of its slots: {@value #SLOTS} of the snapshot of each rank it hosts, and
     * {@value #SLOTS} of each copy its ranks keep ({@code buddyOf[r]}: the rank rank {@code r} sends its copy
     * to, -1 none).
     */
    static Map<String, Long> slotBytesByDomain(List<String> domainOfRank, long[] snapshotBytes, int[] buddyOf) {
        if (domainOfRank.size() != snapshotBytes.length || buddyOf.length != snapshotBytes.length) {
            throw new IllegalArgumentException("a domain, a snapshot size and a buddy per rank: domains="
                + domainOfRank.size() + ", sizes=" + snapshotBytes.length + ", buddies=" + buddyOf.length);
        }
        Map<String, Long> out = new LinkedHashMap<>();
        for (int r = 0; r < snapshotBytes.length; r++) {
            out.merge(domainOfRank.get(r), SLOTS * snapshotBytes[r], Long::sum);
        }
        for (int r = 0; r < buddyOf.length; r++) {
            if (buddyOf[r] >= 0) {
                out.merge(domainOfRank.get(buddyOf[r]), SLOTS * snapshotBytes[r], Long::sum);
            }
        }
        return out;
    }

    /**
     * The memory domains whose slots ({@code neededByDomain}) pass what they can give ({@code limitByDomain}; a
     * domain missing there, or {@link DirectMemory#UNKNOWN}, is not checked), in {@code neededByDomain}'s order,
     * each shortfall naming the nodes of its domain ({@code nodesOf}; the domain's own name when missing there).
     */
    static List<Shortfall> shortfalls(Map<String, Long> neededByDomain, Map<String, Long> limitByDomain,
                                      Map<String, List<String>> nodesOf) {
        List<Shortfall> out = new ArrayList<>();
        for (Map.Entry<String, Long> e : neededByDomain.entrySet()) {
            long limit = limitByDomain.getOrDefault(e.getKey(), DirectMemory.UNKNOWN);
            if (limit != DirectMemory.UNKNOWN && e.getValue() > limit) {
                out.add(new Shortfall(nodesOf.getOrDefault(e.getKey(), List.of(e.getKey())), e.getValue(), limit));
            }
        }
        return out;
    }

    /**
     * What each memory domain can give the snapshots of an epoch ({@link WorkerDescription#memoryKey()}: a JVM,
     * which may run several nodes, or a node), from the descriptions of the epoch's workers ({@code workers}, one
     * per rank): the least free memory any of them measured (they share one JVM's limit), plus what the snapshot
     * slots of each of them already hold ({@link WorkerDescription#snapshotHeldBytes()}). Those slots count as in
     * use in the free memory, yet the epoch writes its snapshots into them (a re-plan of the job that filled them,
     * or the next job): without them a re-plan would find its own slots in the way and turn snapshots off for no
     * want of memory. Slots of workers left out of the epoch stay in use. {@link DirectMemory#UNKNOWN} when no
     * worker of the domain measured it.
     */
    static Map<String, Long> limitByDomain(List<WorkerDescription> workers) {
        Map<String, Long> free = new LinkedHashMap<>();
        Map<String, Long> held = new LinkedHashMap<>();
        for (WorkerDescription d : workers) {
            free.merge(d.memoryKey(), d.snapshotMemoryBytes(), (a, b) -> a == DirectMemory.UNKNOWN ? b
                : b == DirectMemory.UNKNOWN ? a : Math.min(a, b));
            held.merge(d.memoryKey(), d.snapshotHeldBytes(), Long::sum);
        }
        Map<String, Long> out = new LinkedHashMap<>();
        for (Map.Entry<String, Long> e : free.entrySet()) {
            long f = e.getValue();
            out.put(e.getKey(), f == DirectMemory.UNKNOWN ? f : f + held.get(e.getKey()));
        }
        return out;
    }

    /** Every shortfall's reason, joined: what a WARNING and the job's status say. */
    static String describe(List<Shortfall> shortfalls) {
        StringBuilder sb = new StringBuilder();
        for (Shortfall s : shortfalls) {
            sb.append(sb.length() == 0 ? "" : "; ").append(s.describe());
        }
        return sb.toString();
    }
}
