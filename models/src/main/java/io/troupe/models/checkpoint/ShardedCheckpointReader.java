package io.troupe.models.checkpoint;

import io.troupe.models.parallel.ParallelParameter;
import io.troupe.models.parallel.ParallelParameterLayout;
import io.troupe.models.parallel.TensorParallelPlacement;
import io.troupe.models.parallel.tp.TensorParallelSplit;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Reads a committed checkpoint written under one layout as the shards of another: each rank asks
 * for its {@link ParallelParameterLayout.Local} and gets its parameters and AdamW moments, by name,
 * in its local shapes, reading from disk only the byte ranges its shards cover.
 *
 * <p>On disk, model stage {@code g}'s tp member {@code i} writes {@link #shardFileName}{@code (g, tp, i)}
 * (the plain {@code shard-gNN.bin} when tp = 1): the {@link ShardCodec} format, each entry holding
 * that member's shard of one parameter, named as in the unsplit model. Replicated parameters are
 * whole in every member's file. The placement of each parameter (split dimension and fused parts)
 * is the model's ({@link ParallelParameterLayout}); the tp it was written with is the manifest's layout.
 *
 * <p>Resharding is an intersection of runs: a shard of a tensor split along {@code dim} is a list of
 * equal runs of the global row-major buffer ({@link TensorParallelSplit#runStarts}); the source
 * members' runs tile the tensor, so each target run is read from the source runs it overlaps, in
 * one positional read per overlap. Pipeline changes need nothing more: parameters are found by name
 * in whichever stage's file holds them.
 *
 * <p>Integrity: every file's size is checked against the manifest, and entry headers and lengths are
 * checked as they are read. The CRC32C of a whole file is checked by {@link Checkpoints#load}, which
 * reads whole files; a partial read checks instead the CRC32C of every 64 KiB block it reads from
 * ({@link ShardBlockCrcs}, version-2 shards), each once, before using its bytes.
 *
 * <p>Stopping: {@link #read(ParallelParameterLayout.Local, Supplier)} asks its caller before each tensor and each
 * run of bytes it takes from disk (at most the scratch buffer's size, or one checksum block) whether to go on, so
 * a read of any size ends within one such run of being told to. Not thread-safe.
 */
public final class ShardedCheckpointReader implements AutoCloseable {
    /** A stage's shard file; {@code shard-NN.bin} is a single-device run's (stage NN, tp 1). */
    private static final Pattern SHARD = Pattern.compile("shard-g?(\\d+)(?:-t(\\d+))?\\.bin");
    /** The most payload bytes read at once, by default. */
    static final int SCRATCH_BYTES = 4 << 20;

    private final Path dir;
    private final Manifest manifest;
    private final int sourceTp;
    private final List<FileChannel> channels = new ArrayList<>();
    /** name → the source member's file index and entry location, by source tp_i. */
    private final Map<String, Source[]> sources = new HashMap<>();
    private long optimizerStep = -1;
    private long bytesRead;
    private boolean blockChecksums = true;
    /** Payload bytes and checked blocks pass through this, so a read of any length takes bounded memory. */
    private ByteBuffer scratch;
    private final int scratchBytes;
    /** Asked before each run of bytes the read in progress takes: null goes on, anything else is why it stops. */
    private Supplier<String> stop = Checkpoints.NEVER;
    /** The parameter being read, for the message of a stopped read. */
    private String reading = "";

    private record Source(FileChannel channel, Path file, ShardFileIndex.Location location, ShardFileIndex index) {
    }

    /** Blocks of each file whose CRC32C was checked (each is checked once, before its first use). */
    private final Map<Path, BitSet> checked = new HashMap<>();

    /** The file of model stage {@code modelStage}, tp member {@code tpIndex} of {@code tpSize}. */
    public static String shardFileName(int modelStage, int tpSize, int tpIndex) {
        return tpSize == 1 ? String.format("shard-g%02d.bin", modelStage)
            : String.format("shard-g%02d-t%02d.bin", modelStage, tpIndex);
    }

    private ShardedCheckpointReader(Path dir, Manifest manifest, int sourceTp, int scratchBytes) {
        this.dir = dir;
        this.manifest = manifest;
        this.sourceTp = sourceTp;
        this.scratchBytes = scratchBytes;
    }

    /** Opens a committed checkpoint directory, reading its manifest and its shard files' entry headers. */
    public static ShardedCheckpointReader open(Path dir) {
        return open(dir, SCRATCH_BYTES);
    }

    /** As {@link #open(Path)}, reading payloads through a buffer of {@code scratchBytes} (a test's small one). */
    static ShardedCheckpointReader open(Path dir, int scratchBytes) {
        if (scratchBytes < Float.BYTES) {
            throw new IllegalArgumentException("a reader's buffer holds at least one float: scratchBytes="
                + scratchBytes);
        }
        Path mp = dir.resolve(Checkpoints.MANIFEST);
        if (!Files.isRegularFile(mp)) {
            throw new CheckpointException("not a committed checkpoint: " + mp + " is missing");
        }
        ShardedCheckpointReader r = null;
        try {
            Manifest m = Manifest.parse(Files.readString(mp), mp.toString());
            r = new ShardedCheckpointReader(dir, m, m.parsedLayout().tp(), scratchBytes);
            r.index();
            return r;
        } catch (IOException | RuntimeException e) {
            if (r != null) {
                r.close();
            }
            if (e instanceof CheckpointException ce) {
                throw ce;
            }
            throw new CheckpointException("cannot read checkpoint " + dir + ": " + e.getMessage(), e);
        }
    }

    private void index() throws IOException {
        for (Manifest.FileEntry f : manifest.files()) {
            Matcher mt = SHARD.matcher(f.name());
            if (!mt.matches()) {
                continue;
            }
            int tpIndex = mt.group(2) == null ? 0 : Integer.parseInt(mt.group(2));
            if ((mt.group(2) == null) != (sourceTp == 1) || tpIndex >= sourceTp) {
                throw new CheckpointException("checkpoint " + dir + ": shard " + f.name() + " does not fit its layout "
                    + manifest.layout());
            }
            Path p = dir.resolve(f.name());
            if (!Files.isRegularFile(p) || Files.size(p) != f.bytes()) {
                throw new CheckpointException("checkpoint " + dir + ": shard " + f.name() + " is missing or is not "
                    + f.bytes() + " bytes as the manifest says");
            }
            FileChannel ch = FileChannel.open(p, StandardOpenOption.READ);
            channels.add(ch);
            ShardFileIndex idx = ShardFileIndex.scan(ch, p);
            optimizerStep = idx.optimizerStep;
            blockChecksums &= idx.blocks != null;
            for (ShardFileIndex.Location loc : idx.entries.values()) {
                sources.computeIfAbsent(loc.name(), k -> new Source[sourceTp])[tpIndex] = new Source(ch, p, loc, idx);
            }
        }
    }

    public Manifest manifest() {
        return manifest;
    }

    /** The tp degree the checkpoint was written with. */
    public int sourceTensorParallel() {
        return sourceTp;
    }

    /**
     * Whether every shard file carries block checksums (version 2), so that what a partial read uses is
     * verified; a version-1 file is verified only whole ({@link Checkpoints#verify}).
     */
    public boolean verifiesPartialReads() {
        return blockChecksums;
    }

    /** Payload bytes read so far (parameters and moments; headers not counted). */
    public long bytesRead() {
        return bytesRead;
    }

    /** The parameters and moments of {@code target}, by name, in its local shapes. */
    public ShardState read(ParallelParameterLayout.Local target) {
        return read(target, Checkpoints.NEVER);
    }

    /**
     * As {@link #read(ParallelParameterLayout.Local)}, asking {@code stop} before each tensor, each run of at most
     * the scratch buffer's bytes and each checksum block it reads: null goes on; anything else is why the read ends
     * there (an abort, say), named by the exception it throws. {@code stop} is called on the reading thread and
     * must be cheap (a volatile read); another thread may change its answer at any time.
     *
     * @throws CheckpointException "read of checkpoint ... stopped ...: " and {@code stop}'s reason, naming the
     *                             parameter it was reading and the payload bytes read by then
     */
    public ShardState read(ParallelParameterLayout.Local target, Supplier<String> stop) {
        ShardState out = new ShardState(optimizerStep);
        this.stop = stop;
        try {
            for (ParallelParameterLayout.Local.Entry e : target.entries()) {
                reading = e.parameter().name();
                stopIfAsked();
                float[][] a = readEntry(e.parameter(), target.tpSize(), target.tpIndex(), 3);
                out.put(new ShardState.Entry(e.parameter().name(), e.shape(), a[0], a[1], a[2]));
            }
        } catch (IOException ex) {
            throw new CheckpointException("cannot read checkpoint " + dir + ": " + ex.getMessage(), ex);
        } finally {
            this.stop = Checkpoints.NEVER;
            reading = "";
        }
        return out;
    }

    /** Throws when {@link #stop} names a reason to stop the read in progress. */
    private void stopIfAsked() {
        String why = stop.get();
        if (why != null) {
            throw new CheckpointException("read of checkpoint " + dir + " stopped at parameter '" + reading + "' after "
                + bytesRead + " payload bytes: " + why);
        }
    }

    /**
     * The parameters of {@code target} alone, without their AdamW moments (what inference needs), by
     * name, in its local shapes: only their bytes are read.
     */
    public Map<String, float[]> readParameters(ParallelParameterLayout.Local target) {
        Map<String, float[]> out = new HashMap<>();
        try {
            for (ParallelParameterLayout.Local.Entry e : target.entries()) {
                out.put(e.parameter().name(), readEntry(e.parameter(), target.tpSize(), target.tpIndex(), 1)[0]);
            }
        } catch (IOException ex) {
            throw new CheckpointException("cannot read checkpoint " + dir + ": " + ex.getMessage(), ex);
        }
        return out;
    }

    /** The first {@code arrays} of {parameter, m, v} of {@code p}'s shard {@code iT} of {@code tpT}. */
    private float[][] readEntry(ParallelParameter p, int tpT, int iT, int arrays) throws IOException {
        Source[] src = sources.get(p.name());
        if (src == null) {
            throw new CheckpointException("checkpoint " + dir + " has no parameter '" + p.name() + "'");
        }
        boolean split = p.tp() instanceof TensorParallelPlacement.Split;
        int members = split ? sourceTp : 1;
        for (int s = 0; s < members; s++) {
            if (src[s] == null) {
                throw new CheckpointException("checkpoint " + dir + ": parameter '" + p.name()
                    + "' has no shard from tp member " + s);
            }
            int[] expect = p.localShape(split ? sourceTp : 1);
            if (!Arrays.equals(src[s].location().shape(), expect)) {
                throw new CheckpointException("parameter '" + p.name() + "' has shape "
                    + Arrays.toString(src[s].location().shape()) + " in " + src[s].file().getFileName()
                    + ", the model's tp=" + sourceTp + " shard is " + Arrays.toString(expect));
            }
        }
        int[] global = p.globalShape();
        TensorParallelSplit sp = p.split();
        int tpTarget = split ? tpT : 1;
        long numel = p.localNumel(tpTarget);
        if (numel > ShardCodec.MAX_TENSOR_ELEMENTS) {
            throw new CheckpointException("parameter '" + p.name() + "' has " + numel + " elements in a tp=" + tpTarget
                + " shard, more than the " + ShardCodec.MAX_TENSOR_ELEMENTS + " one array holds");
        }
        int n = (int) numel;
        float[][] out = new float[arrays][n];
        // Source runs of every member, in global order: {global start, member, local position}.
        long lenS = sp.runLength(global, members);
        List<long[]> runs = new ArrayList<>();
        for (int s = 0; s < members; s++) {
            long[] starts = sp.runStarts(global, members, s);
            for (int j = 0; j < starts.length; j++) {
                runs.add(new long[] {starts[j], s, j * lenS});
            }
        }
        runs.sort((x, y) -> Long.compare(x[0], y[0]));
        long lenT = sp.runLength(global, tpTarget);
        long[] targetStarts = sp.runStarts(global, tpTarget, split ? iT : 0);
        int j = 0;
        for (int k = 0; k < targetStarts.length; k++) {
            long a = targetStarts[k];
            long aEnd = a + lenT;
            while (runs.get(j)[0] + lenS <= a) {
                j++;
            }
            for (int q = j; q < runs.size() && runs.get(q)[0] < aEnd; q++) {
                long[] r = runs.get(q);
                long from = Math.max(a, r[0]);
                long to = Math.min(aEnd, r[0] + lenS);
                Source s = src[(int) r[1]];
                for (int which = 0; which < arrays; which++) {
                    long off = s.location().arrayOffsetBytes(which) + (r[2] + from - r[0]) * 4;
                    readFloats(s, off, out[which], (int) (k * lenT + from - a), (int) (to - from));
                }
            }
        }
        return out;
    }

    private void readFloats(Source s, long offsetBytes, float[] dst, int dstOffset, int count) throws IOException {
        check(s, offsetBytes, count * 4L);
        long size = s.channel().size();
        int done = 0;
        while (done < count) {
            stopIfAsked();
            int k = Math.min(count - done, scratchBytes / Float.BYTES);
            ByteBuffer bb = readInto(s, offsetBytes + done * 4L, k * Float.BYTES, size, "payload");
            bb.asFloatBuffer().get(dst, dstOffset + done, k);
            done += k;
            bytesRead += k * (long) Float.BYTES;
        }
    }

    /** Bytes [pos, pos + len) of {@code s}'s file in the scratch buffer ({@code len <= scratchBytes}). */
    private ByteBuffer readInto(Source s, long pos, int len, long size, String what) throws IOException {
        if (pos + len > size) {
            throw new CheckpointException(s.file() + ": truncated in " + what + " at byte " + pos);
        }
        if (scratch == null) {
            scratch = ByteBuffer.allocateDirect(scratchBytes).order(ByteOrder.LITTLE_ENDIAN);
        }
        scratch.clear().limit(len);
        while (scratch.hasRemaining()) {
            if (s.channel().read(scratch, pos + scratch.position()) < 0) {
                throw new CheckpointException(s.file() + ": unexpected end in " + what + " at byte " + pos);
            }
        }
        return scratch.flip();
    }

    /** Checks the CRC32C of every block of {@code s}'s file that bytes [offset, offset + length) touch, once. */
    private void check(Source s, long offsetBytes, long length) throws IOException {
        ShardBlockCrcs b = s.index().blocks;
        if (b == null || length <= 0) {
            return; // a version-1 file has no block checksums (Checkpoints.load checks it whole)
        }
        BitSet done = checked.computeIfAbsent(s.file(), k -> new BitSet());
        int first = (int) (offsetBytes / b.blockBytes());
        int last = (int) ((offsetBytes + length - 1) / b.blockBytes());
        for (int k = done.nextClearBit(first); k <= last; k = done.nextClearBit(k + 1)) {
            stopIfAsked();
            ByteBuffer block = b.blockBytes() <= scratchBytes
                ? readInto(s, (long) k * b.blockBytes(), b.blockLength(k), b.bodyEnd(), "block " + k)
                : ShardFileIndex.read(s.channel(), (long) k * b.blockBytes(), b.blockLength(k), b.bodyEnd(), s.file(),
                    "block " + k);
            b.check(k, block, s.file().toString());
            done.set(k);
        }
    }

    @Override
    public void close() {
        for (FileChannel ch : channels) {
            try {
                ch.close();
            } catch (IOException ignored) {
                // read-only channel: nothing is lost
            }
        }
        channels.clear();
    }
}
