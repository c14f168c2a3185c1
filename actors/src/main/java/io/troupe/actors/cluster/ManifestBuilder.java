package io.troupe.actors.cluster;

import io.troupe.models.checkpoint.Manifest;
import io.troupe.models.gpt.GptConfig;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;

/**
 * Phase 1 accounting of a two-phase checkpoint: collects every rank's shard entries of one step;
 * once all ranks have written, {@link #manifest()} is the commit record to write. Plain class, one
 * thread (the coordinator's).
 */
public final class ManifestBuilder {
    private final int ranks;
    private final long step;
    private final BitSet written = new BitSet();
    private final List<Manifest.FileEntry> files = new ArrayList<>();

    public ManifestBuilder(int ranks, long step) {
        this.ranks = ranks;
        this.step = step;
    }

    public long step() {
        return step;
    }

    /**
     * Adds rank {@code rank}'s shard files (replicas other than 0 write none); repeats are ignored.
     *
     * @return true when every rank has written
     */
    public boolean add(int rank, String[] names, long[] bytes, long[] crcs) {
        if (rank < 0 || rank >= ranks) {
            throw new IllegalArgumentException("shards from a rank outside the world: rank=" + rank + ", ranks="
                + ranks);
        }
        if (names.length != bytes.length || names.length != crcs.length) {
            throw new IllegalArgumentException("rank " + rank + " sent mismatched shard lists: names=" + names.length
                + ", bytes=" + bytes.length + ", crcs=" + crcs.length);
        }
        if (!written.get(rank)) {
            written.set(rank);
            for (int i = 0; i < names.length; i++) {
                files.add(new Manifest.FileEntry(names[i], bytes[i], crcs[i]));
            }
        }
        return complete();
    }

    public boolean complete() {
        return written.cardinality() == ranks;
    }

    /** Ranks whose shards are not in yet. */
    public List<Integer> missing() {
        List<Integer> out = new ArrayList<>();
        for (int r = 0; r < ranks; r++) {
            if (!written.get(r)) {
                out.add(r);
            }
        }
        return out;
    }

    /** The commit record, shards sorted by name (the same bytes whatever order the ranks answered in). */
    public Manifest manifest(long seed, int batchSize, String layout, GptConfig model, String dataSource) {
        if (!complete()) {
            throw new IllegalStateException("checkpoint of step " + step + " still misses rank(s) " + missing());
        }
        List<Manifest.FileEntry> sorted = new ArrayList<>(files);
        sorted.sort(java.util.Comparator.comparing(Manifest.FileEntry::name));
        return new Manifest(Manifest.FORMAT, step, step, seed, batchSize, layout, model, dataSource, sorted);
    }
}
