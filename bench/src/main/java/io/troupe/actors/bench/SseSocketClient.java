package io.troupe.actors.bench;

import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.Locale;

/**
 * The serve bench's lean load-generating client: one keep-alive HTTP/1.1 connection on a blocking
 * socket, the request written in one piece, the response (chunked or with a length) read on the
 * calling thread, its server-sent events timed line by line as they arrive. A token costs this
 * client one socket read on one thread, where the JDK's HttpClient hands every chunk from its
 * selector thread to a worker and on to the reading thread. Not a general HTTP client: it speaks
 * exactly what the completions endpoint answers (status, headers, then chunks or a length).
 */
final class SseSocketClient implements AutoCloseable {
    /** Bounds every read: a server that stops answering fails the request instead of hanging the bench. */
    private static final int READ_TIMEOUT_MS = 600_000;

    private final URI uri;
    private final byte[] buf = new byte[1 << 16];
    private int pos;
    private int lim;
    private Socket socket;
    private InputStream in;
    private OutputStream out;
    private final StringBuilder line = new StringBuilder();

    SseSocketClient(URI uri) {
        this.uri = uri;
    }

    /** One request: {completion tokens, ttft ms, tpot ms} streamed, or {tokens, latency ms, 0} whole. */
    double[] post(String prompt, int maxTokens, int seed) throws IOException {
        byte[] body = ServeLoad.body(prompt, maxTokens, seed).getBytes(StandardCharsets.UTF_8);
        byte[] head = ("POST " + uri.getRawPath() + " HTTP/1.1\r\nHost: " + uri.getHost() + ":" + uri.getPort()
            + "\r\nContent-Type: application/json\r\nContent-Length: " + body.length + "\r\n\r\n")
            .getBytes(StandardCharsets.US_ASCII);
        byte[] request = new byte[head.length + body.length];
        System.arraycopy(head, 0, request, 0, head.length);
        System.arraycopy(body, 0, request, head.length, body.length);
        if (socket == null) {
            connect();
        }
        long start = System.nanoTime();
        out.write(request);
        out.flush();
        String status = readLine();
        if (!status.startsWith("HTTP/1.1 200")) {
            throw new IOException("status line: " + status);
        }
        long length = -1;
        boolean chunked = false;
        boolean close = false;
        for (String h = readLine(); !h.isEmpty(); h = readLine()) {
            String lower = h.toLowerCase(Locale.ROOT);
            if (lower.startsWith("content-length:")) {
                length = Long.parseLong(lower.substring(15).trim());
            } else if (lower.startsWith("transfer-encoding:") && lower.contains("chunked")) {
                chunked = true;
            } else if (lower.startsWith("connection:") && lower.contains("close")) {
                close = true;
            }
        }
        ServeLoad.StreamTimer timer = new ServeLoad.StreamTimer();
        StringBuilder whole = ServeLoad.isStreaming() ? null : new StringBuilder();   // a whole response's text
        line.setLength(0);
        if (chunked) {
            for (long size = chunkSize(); size > 0; size = chunkSize()) {
                body(size, timer, whole);
                if (!readLine().isEmpty()) {
                    throw new IOException("chunk not followed by CRLF");
                }
            }
            while (!readLine().isEmpty()) {
                // trailer fields: none expected
            }
        } else if (length >= 0) {
            body(length, timer, whole);
        } else {
            throw new IOException("response with neither a length nor chunks");
        }
        if (close) {
            close();
        }
        if (whole == null) {
            return timer.result(start);
        }
        whole.append(line);                              // its last (or only) line
        return ServeLoad.wholeResponse(whole.toString(), start);
    }

    private void connect() throws IOException {
        socket = new Socket();
        socket.setTcpNoDelay(true);
        socket.connect(new InetSocketAddress(uri.getHost(), uri.getPort()), 10_000);
        socket.setSoTimeout(READ_TIMEOUT_MS);
        in = socket.getInputStream();
        out = socket.getOutputStream();
        pos = 0;
        lim = 0;
    }

    private long chunkSize() throws IOException {
        String s = readLine();
        int semi = s.indexOf(';');
        try {
            return Long.parseLong((semi >= 0 ? s.substring(0, semi) : s).trim(), 16);
        } catch (NumberFormatException e) {
            throw new IOException("bad chunk size line: " + s, e);
        }
    }

    /**
     * {@code n} body bytes: complete lines to the timer (stamped as their end arrives), and to {@code whole}
     * where given (a response that is not streamed).
     */
    private void body(long n, ServeLoad.StreamTimer timer, StringBuilder whole) throws IOException {
        while (n > 0) {
            if (pos == lim) {
                fill();
            }
            int take = (int) Math.min(n, lim - pos);
            long now = System.nanoTime();
            for (int i = pos; i < pos + take; i++) {
                char c = (char) (buf[i] & 0xff);            // the events' JSON is ASCII (non-ASCII escaped)
                if (c == '\n') {
                    String l = line.toString();
                    timer.line(l, now);
                    if (whole != null) {
                        whole.append(l).append('\n');
                    }
                    line.setLength(0);
                } else if (c != '\r') {
                    line.append(c);
                }
            }
            pos += take;
            n -= take;
        }
    }

    private String readLine() throws IOException {
        StringBuilder s = new StringBuilder();
        while (true) {
            if (pos == lim) {
                fill();
            }
            byte b = buf[pos++];
            if (b == '\n') {
                int len = s.length();
                return len > 0 && s.charAt(len - 1) == '\r' ? s.substring(0, len - 1) : s.toString();
            }
            s.append((char) (b & 0xff));
        }
    }

    private void fill() throws IOException {
        int n = in.read(buf, 0, buf.length);
        if (n < 0) {
            throw new EOFException("connection closed by the server");
        }
        pos = 0;
        lim = n;
    }

    @Override
    public void close() {
        if (socket != null) {
            try {
                socket.close();
            } catch (IOException e) {
                // closing: nothing to do
            }
            socket = null;
        }
    }
}
