package io.troupe.models.data;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * An immutable sequence of byte tokens (vocabulary 256), indexed by {@code long}: held on the heap
 * ({@link #TokenStream(byte[], String)}) or memory-mapped from files ({@link #mapped}), so a corpus
 * may be larger than the heap and than 2 GiB. Mapped files are split into read-only
 * {@link ByteBuffer}s of at most {@link #SEGMENT_BYTES} each (a single buffer cannot pass 2 GiB);
 * several files read as their concatenation. Safe to read from many threads.
 */
public final class TokenStream {
    /** Largest mapped segment (1 GiB). */
    public static final long SEGMENT_BYTES = 1L << 30;

    private final ByteBuffer[] segments;
    private final long[] starts;
    private final long length;
    private final String description;

    public TokenStream(byte[] tokens, String description) {
        this(new ByteBuffer[] {ByteBuffer.wrap(tokens)}, new long[] {0}, tokens.length, description);
    }

    private TokenStream(ByteBuffer[] segments, long[] starts, long length, String description) {
        this.segments = segments;
        this.starts = starts;
        this.length = length;
        this.description = description;
    }

    /**
     * Bytes {@code [from, to)} of the concatenation of {@code files} (in the given order), mapped
     * read-only. The files must not change while the stream is in use.
     */
    public static TokenStream mapped(List<Path> files, long from, long to, String description) {
        if (from < 0 || to < from) {
            throw new IllegalArgumentException("bad byte range [" + from + ", " + to + ") of " + description);
        }
        List<ByteBuffer> segs = new ArrayList<>();
        List<Long> segStarts = new ArrayList<>();
        long fileStart = 0;
        for (Path f : files) {
            try (FileChannel ch = FileChannel.open(f, StandardOpenOption.READ)) {
                long size = ch.size();
                long lo = Math.max(from, fileStart);
                long hi = Math.min(to, fileStart + size);
                for (long p = lo; p < hi; p += SEGMENT_BYTES) {
                    long n = Math.min(SEGMENT_BYTES, hi - p);
                    segs.add(ch.map(FileChannel.MapMode.READ_ONLY, p - fileStart, n));
                    segStarts.add(p - from);
                }
                fileStart += size;
            } catch (IOException e) {
                throw new UncheckedIOException("cannot map data file " + f + ": " + e.getMessage(), e);
            }
        }
        if (to > fileStart) {
            throw new IllegalArgumentException("byte range [" + from + ", " + to + ") passes the end (" + fileStart
                + " bytes) of " + description);
        }
        long[] s = new long[segStarts.size()];
        for (int i = 0; i < s.length; i++) {
            s[i] = segStarts.get(i);
        }
        return new TokenStream(segs.toArray(ByteBuffer[]::new), s, to - from, description);
    }

    public long length() {
        return length;
    }

    /** Token at {@code i} as an int in [0, 256). */
    public int token(long i) {
        if (segments.length == 1) {
            return segments[0].get((int) i) & 0xFF;
        }
        int k = Arrays.binarySearch(starts, i);
        if (k < 0) {
            k = -k - 2;
        }
        return segments[k].get((int) (i - starts[k])) & 0xFF;
    }

    public String description() {
        return description;
    }

    /**
     * Feeds every token, in order, to {@code sha}: the bytes this stream holds (for a mapped stream, its mapped
     * pages), read through views of its buffers, so many threads may do this at once.
     */
    void digest(MessageDigest sha) {
        for (ByteBuffer s : segments) {
            sha.update(s.duplicate());
        }
    }

    /**
     * Copies tokens from {@code pos} into {@code dst} until it is full or the stream ends, in bulk per buffer;
     * {@code dst}'s position advances by what was copied. Safe from many threads, as {@link #digest} is.
     */
    void read(long pos, ByteBuffer dst) {
        if (pos < 0) {
            throw new IllegalArgumentException("bad position " + pos + " of " + description);
        }
        if (pos >= length) {
            return;
        }
        int k = Arrays.binarySearch(starts, pos);
        if (k < 0) {
            k = -k - 2;
        }
        long p = pos;
        for (; k < segments.length && dst.hasRemaining() && p < length; k++) {
            ByteBuffer s = segments[k].duplicate();
            int off = (int) (p - starts[k]);
            int n = Math.min(dst.remaining(), s.limit() - off);
            dst.put(s.position(off).limit(off + n));
            p += n;
        }
    }

    /** A copy of tokens [from, to) (at most 2^31 - 1 of them). */
    public byte[] slice(long from, long to) {
        if (to - from > Integer.MAX_VALUE - 8 || from < 0 || to > length || to < from) {
            throw new IllegalArgumentException("bad slice [" + from + ", " + to + ") of " + length + " tokens");
        }
        byte[] out = new byte[(int) (to - from)];
        for (int i = 0; i < out.length; i++) {
            out[i] = (byte) token(from + i);
        }
        return out;
    }
}
