package io.troupe.runtime.testkit;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;

/**
 * A TCP port on 127.0.0.1 where nothing listens, held for the test: a socket bound to it without
 * {@code listen} (and without {@code SO_REUSEADDR}), so a connection to it is refused and no other
 * process can bind it, nor the kernel hand it out as a connection's local port, until {@link #close()}.
 * It stands for a dead process's port. Probing a free port and closing it instead leaves a window in
 * which a concurrent test run, or any other process, can bind it; tests that need a port to listen on
 * bind port 0 themselves and read back the port they got.
 */
public final class RefusingPort implements AutoCloseable {
    private final Socket socket;

    private RefusingPort(Socket socket) {
        this.socket = socket;
    }

    /** Binds a free loopback port that refuses connections until closed. */
    public static RefusingPort open() {
        Socket s = new Socket();
        try {
            s.setReuseAddress(false);
            s.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
            return new RefusingPort(s);
        } catch (IOException e) {
            try {
                s.close();
            } catch (IOException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw new UncheckedIOException("could not bind a loopback port: " + e.getMessage(), e);
        }
    }

    public int port() {
        return socket.getLocalPort();
    }

    /** {@code 127.0.0.1:port}, as a seed or peer address. */
    public String hostPort() {
        return socket.getLocalAddress().getHostAddress() + ":" + port();
    }

    @Override
    public void close() {
        try {
            socket.close();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
