package io.troupe.runtime.testkit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.BindException;
import java.net.ConnectException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(30)
class RefusingPortTest {
    @Test
    void shouldRefuseConnectionsAndKeepOthersFromBindingItUntilClosed() throws Exception {
        InetAddress loopback = InetAddress.getLoopbackAddress();
        int port;
        try (RefusingPort refusing = RefusingPort.open()) {
            port = refusing.port();
            assertTrue(port > 0, "bound a port: " + port);
            assertEquals("127.0.0.1:" + port, refusing.hostPort());
            try (Socket s = new Socket()) {
                assertThrows(ConnectException.class, () -> s.connect(new InetSocketAddress(loopback, port), 5_000));
            }
            // a server socket asks for SO_REUSEADDR (Java's default for it); the port stays taken all the same
            try (ServerSocket other = new ServerSocket()) {
                assertTrue(other.getReuseAddress());
                assertThrows(BindException.class, () -> other.bind(new InetSocketAddress(loopback, port)));
            }
        }
        try (ServerSocket after = new ServerSocket(port, 1, loopback)) {
            assertEquals(port, after.getLocalPort(), "free again once closed");
        }
    }
}
