package io.troupe.models.checkpoint;

import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * Binary layout of a shard file, little-endian:
 * <pre>
 *   0  magic "TRPSHARD" (8 bytes)
 *   8  version            int32  (2)
 *  12  optimizer step     int64
 *  20  entry count        int32
 *  24  entries: name length int32, name UTF-8, rank int32, dims int32[rank],
 *      param float32[n], m float32[n], v float32[n]
 *      (version 2) the block checksums ({@link ShardBlockCrcs}), so a partial read checks what it reads
 * </pre>
 * Version 1 files (no block checksums) are still read.
 *
 * <p>Files are written by {@link ShardFileWriter} and read by {@link ShardFileReader}, which stream them
 * through a bounded buffer, so a file may be of any size; {@link #encode} and {@link #decode} are the
 * simple reference of both (the whole file as one array, so at most {@link #MAX_ARRAY_BYTES}), which the
 * streaming ones are tested against. Decoding checks every length against the bytes present, so a
 * truncated file is refused with the offset where it ends.
 */
final class ShardCodec {
    static final byte[] MAGIC = "TRPSHARD".getBytes(StandardCharsets.US_ASCII);
    static final int VERSION = 2;
    /** Bytes of the header: magic, version, optimizer step, entry count. */
    static final int HEADER_BYTES = 24;
    /** The most entries a file may declare. */
    static final int MAX_ENTRIES = 1_000_000;
    /** The longest entry name, in UTF-8 bytes. */
    static final int MAX_NAME_BYTES = 4096;
    /** The most dimensions of an entry. */
    static final int MAX_RANK = 8;
    /** The most elements of one tensor: a Java array's (each of param, m and v is one {@code float[]}). */
    static final long MAX_TENSOR_ELEMENTS = Integer.MAX_VALUE - 8;

    private ShardCodec() {
    }

    /** The most bytes {@link #encode} and {@link #decode} handle: the whole file is one array. */
    static final long MAX_ARRAY_BYTES = Integer.MAX_VALUE - 64;

    /** Bytes of the body of {@code s}: the header and the entries, without the block checksums. */
    static long bodyBytes(ShardState s) {
        long body = HEADER_BYTES;
        for (ShardState.Entry e : s.entries().values()) {
            body += 8 + e.name().getBytes(StandardCharsets.UTF_8).length + 4L * e.shape().length
                + 4L * (e.param().length + (long) e.m().length + e.v().length);
        }
        return body;
    }

    /** The bytes a shard file of {@code s} holds: the body and its block checksums. */
    static long encodedBytes(ShardState s) {
        long body = bodyBytes(s);
        return body + ShardBlockCrcs.trailerBytes(body, ShardBlockCrcs.BLOCK_BYTES);
    }

    /**
     * The element count of an entry of shape {@code shape} as read from {@code file}.
     *
     * @throws CheckpointException when it passes {@link #MAX_TENSOR_ELEMENTS}, naming the entry and the count
     */
    static long elementCount(int[] shape, String file, String entry) {
        long n = 1;
        for (int d : shape) {
            n *= d; // n <= MAX_TENSOR_ELEMENTS and d < 2^31 before: no overflow
            if (n > MAX_TENSOR_ELEMENTS) {
                BigInteger all = BigInteger.ONE;
                for (int e : shape) {
                    all = all.multiply(BigInteger.valueOf(e));
                }
                throw new CheckpointException(file + ": entry '" + entry + "' of shape " + Arrays.toString(
                    shape) + " has " + all + " elements, more than the " + MAX_TENSOR_ELEMENTS + " one array holds");
            }
        }
        return n;
    }

    /**
     * Encodes {@code s} into one array: the reference of {@link ShardFileWriter}.
     *
     * @throws CheckpointException when the file would pass {@link #MAX_ARRAY_BYTES}, naming its size
     *                             (instead of running out of memory while it grows)
     */
    static byte[] encode(ShardState s) {
        return encode(s, MAX_ARRAY_BYTES);
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
                + size + " bytes, more than the " + maxBytes + " one array holds (ShardFileWriter streams any size)");
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
            byte[] all = Arrays.copyOf(body, body.length + trailer.length);
            System.arraycopy(trailer, 0, all, body.length, trailer.length);
            return all;
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Decodes a whole file held in one array: the reference of {@link ShardFileReader}. */
    static ShardState decode(byte[] data, String file) {
        ByteBuffer bb = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
        need(bb, HEADER_BYTES, file, "header");
        byte[] magic = new byte[8];
        bb.get(magic);
        if (!Arrays.equals(magic, MAGIC)) {
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
        if (count < 0 || count > MAX_ENTRIES) {
            throw new CheckpointException(file + ": impossible entry count " + count);
        }
        for (int i = 0; i < count; i++) {
            need(bb, 4, file, "entry " + i + " name length");
            int nameLen = bb.getInt();
            if (nameLen < 0 || nameLen > MAX_NAME_BYTES) {
                throw new CheckpointException(file + ": impossible name length " + nameLen + " at entry " + i);
            }
            need(bb, nameLen + 4, file, "entry " + i + " name");
            byte[] name = new byte[nameLen];
            bb.get(name);
            int rank = bb.getInt();
            if (rank < 1 || rank > MAX_RANK) {
                throw new CheckpointException(file + ": impossible rank " + rank + " at entry " + i);
            }
            need(bb, rank * 4, file, "entry " + i + " shape");
            int[] shape = new int[rank];
            for (int d = 0; d < rank; d++) {
                shape[d] = bb.getInt();
                if (shape[d] <= 0) {
                    throw new CheckpointException(file + ": impossible dimension " + shape[d] + " at entry " + i);
                }
            }
            long n = elementCount(shape, file, new String(name, StandardCharsets.UTF_8));
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
