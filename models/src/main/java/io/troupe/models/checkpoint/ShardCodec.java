package io.troupe.models.checkpoint;

import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

/**
 * Binary layout of a shard file, little-endian:
 * <pre>
 *   0  magic "TRPSHARD" (8 bytes)
 *   8  version            int32  (1)
 *  12  optimizer step     int64
 *  20  entry count        int32
 *  24  entries: name length int32, name UTF-8, rank int32, dims int32[rank],
 *      param float32[n], m float32[n], v float32[n]
 *      (version 2) the block checksums ({@link ShardBlockCrcs}), so a partial read checks what it reads
 * </pre>
 * Version 1 files (no block checksums) are still read.
 * Decoding checks every length against the bytes present, so a truncated file is refused with the
 * offset where it ends.
 */
final class ShardCodec {
    static final byte[] MAGIC = "TRPSHARD".getBytes(StandardCharsets.US_ASCII);
    static final int VERSION = 2;

    private ShardCodec() {
    }

    /** The most bytes a shard file may hold: it is encoded, written and read as one array. */
    static final long MAX_FILE_BYTES = Integer.MAX_VALUE - 64;

    /** The bytes {@link #encode} writes for {@code s}: the body and its block checksums. */
    static long encodedBytes(ShardState s) {
        long body = 24;
        for (ShardState.Entry e : s.entries().values()) {
            body += 8 + e.name().getBytes(StandardCharsets.UTF_8).length + 4L * e.shape().length
                + 4L * (e.param().length + (long) e.m().length + e.v().length);
        }
        long blocks = (body + ShardBlockCrcs.BLOCK_BYTES - 1) / ShardBlockCrcs.BLOCK_BYTES;
        return body + ShardBlockCrcs.FIXED + 4 * blocks;
    }

    /**
     * Encodes {@code s}.
     *
     * @throws CheckpointException when the file would pass {@link #MAX_FILE_BYTES}, naming its size
     *                             (instead of running out of memory while it grows)
     */
    static byte[] encode(ShardState s) {
        return encode(s, MAX_FILE_BYTES);
    }

    /** As {@link #encode(ShardState)} with a limit of {@code maxBytes} (a test's small one). */
    static byte[] encode(ShardState s, long maxBytes) {
        long size = encodedBytes(s);
        if (size > maxBytes) {
            long params = 0;
            for (ShardState.Entry e : s.entries().values()) {
                params += e.param().length;
            }
            throw new CheckpointException("a shard of " + params + " parameters with its optimizer moments takes "
                + size + " bytes, more than the " + maxBytes + " a shard file holds; split the model over more"
                + " pipeline stages or tensor-parallel ranks");
        }
        try {
            ByteArrayOutputStream bytes = new ByteArrayOutputStream();
            DataOutputStream out = new DataOutputStream(bytes);
            out.write(MAGIC);
            writeIntLe(out, VERSION);
            writeLongLe(out, s.optimizerStep());
            writeIntLe(out, s.entries().size());
            for (ShardState.Entry e : s.entries().values()) {
                byte[] name = e.name().getBytes(StandardCharsets.UTF_8);
                writeIntLe(out, name.length);
                out.write(name);
                writeIntLe(out, e.shape().length);
                for (int d : e.shape()) {
                    writeIntLe(out, d);
                }
                for (float[] arr : new float[][] {e.param(), e.m(), e.v()}) {
                    ByteBuffer bb = ByteBuffer.allocate(arr.length * 4).order(ByteOrder.LITTLE_ENDIAN);
                    bb.asFloatBuffer().put(arr);
                    out.write(bb.array());
                }
            }
            out.flush();
            byte[] body = bytes.toByteArray();
            byte[] trailer = ShardBlockCrcs.trailer(body);
            byte[] all = java.util.Arrays.copyOf(body, body.length + trailer.length);
            System.arraycopy(trailer, 0, all, body.length, trailer.length);
            return all;
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    static ShardState decode(byte[] data, String file) {
        ByteBuffer bb = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
        need(bb, 24, file, "header");
        byte[] magic = new byte[8];
        bb.get(magic);
        if (!java.util.Arrays.equals(magic, MAGIC)) {
            throw new CheckpointException(file + ": not a Troupe shard (bad magic)");
        }
        int version = bb.getInt();
        if (version != 1 && version != VERSION) {
            throw new CheckpointException(file + ": unsupported shard version " + version + " (this build reads 1 to "
                + VERSION + ")");
        }
        if (version == VERSION) {
            ShardBlockCrcs blocks = ShardBlockCrcs.parse(data, file);
            for (int k = 0; k < blocks.crcs().length; k++) {
                blocks.check(k, ByteBuffer.wrap(data, k * blocks.blockBytes(), blocks.blockLength(k)), file);
            }
            bb.limit((int) blocks.bodyEnd());
        }
        ShardState s = new ShardState(bb.getLong());
        int count = bb.getInt();
        if (count < 0 || count > 1_000_000) {
            throw new CheckpointException(file + ": impossible entry count " + count);
        }
        for (int i = 0; i < count; i++) {
            need(bb, 4, file, "entry " + i + " name length");
            int nameLen = bb.getInt();
            if (nameLen < 0 || nameLen > 4096) {
                throw new CheckpointException(file + ": impossible name length " + nameLen + " at entry " + i);
            }
            need(bb, nameLen + 4, file, "entry " + i + " name");
            byte[] name = new byte[nameLen];
            bb.get(name);
            int rank = bb.getInt();
            if (rank < 1 || rank > 8) {
                throw new CheckpointException(file + ": impossible rank " + rank + " at entry " + i);
            }
            need(bb, rank * 4, file, "entry " + i + " shape");
            int[] shape = new int[rank];
            long n = 1;
            for (int d = 0; d < rank; d++) {
                shape[d] = bb.getInt();
                if (shape[d] <= 0) {
                    throw new CheckpointException(file + ": impossible dimension " + shape[d] + " at entry " + i);
                }
                n *= shape[d];
            }
            if (n * 12 > bb.remaining()) {
                throw new CheckpointException(file + ": truncated at byte " + data.length + " inside entry '"
                    + new String(name, StandardCharsets.UTF_8) + "' (needs " + n * 12 + " more bytes, has "
                        + bb.remaining() + ")");
            }
            float[][] arrs = new float[3][(int) n];
            for (float[] arr : arrs) {
                bb.asFloatBuffer().get(arr);
                bb.position(bb.position() + arr.length * 4);
            }
            s.put(new ShardState.Entry(new String(name, StandardCharsets.UTF_8), shape, arrs[0], arrs[1], arrs[2]));
        }
        if (bb.hasRemaining()) {
            throw new CheckpointException(file + ": " + bb.remaining() + " unexpected trailing bytes");
        }
        return s;
    }

    private static void need(ByteBuffer bb, int n, String file, String what) {
        if (bb.remaining() < n) {
            throw new CheckpointException(file + ": truncated in " + what + " at byte " + bb.position());
        }
    }

    private static void writeIntLe(DataOutputStream out, int v) throws IOException {
        out.writeInt(Integer.reverseBytes(v));
    }

    private static void writeLongLe(DataOutputStream out, long v) throws IOException {
        out.writeLong(Long.reverseBytes(v));
    }
}
