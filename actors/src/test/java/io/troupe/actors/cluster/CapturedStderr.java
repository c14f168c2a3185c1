package io.troupe.actors.cluster;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

/**
 * Test fixture: what the process writes to {@code System.err} (the nodes' log) while it is open, still shown
 * and also kept, so a test reads the log lines its actors wrote. {@link #close()} puts the old stream back.
 */
final class CapturedStderr implements AutoCloseable {
    private final PrintStream old;
    private final ByteArrayOutputStream kept = new ByteArrayOutputStream();

    private CapturedStderr() {
        this.old = System.err;
        System.setErr(new PrintStream(new Tee(old, kept), true, StandardCharsets.UTF_8));
    }

    /** Starts keeping {@code System.err}. */
    static CapturedStderr open() {
        return new CapturedStderr();
    }

    /** Bytes kept so far: a mark for {@link #since}. */
    int mark() {
        synchronized (kept) {
            return kept.size();
        }
    }

    /** The text written since {@code mark}. */
    String since(int mark) {
        byte[] text;
        synchronized (kept) {
            text = kept.toByteArray();
        }
        return new String(text, mark, text.length - mark, StandardCharsets.UTF_8);
    }

    @Override
    public void close() {
        System.setErr(old);
    }

    /** Writes to both streams. */
    private static final class Tee extends OutputStream {
        private final OutputStream a;
        private final ByteArrayOutputStream b;

        Tee(OutputStream a, ByteArrayOutputStream b) {
            this.a = a;
            this.b = b;
        }

        @Override
        public void write(int x) throws IOException {
            a.write(x);
            synchronized (b) {
                b.write(x);
            }
        }

        @Override
        public void write(byte[] buf, int off, int len) throws IOException {
            a.write(buf, off, len);
            synchronized (b) {
                b.write(buf, off, len);
            }
        }
    }
}
