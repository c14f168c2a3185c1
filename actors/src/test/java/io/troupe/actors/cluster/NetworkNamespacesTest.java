package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.actors.cli.TroupeCli;
import io.troupe.runtime.launch.ChildJvm;
import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Four "hosts" on separate network stacks: Linux network namespaces joined by a bridge, each with its
 * own 10.77.0.x address, node process and media driver. scripts/launch-cluster.sh starts one node per
 * namespace with the multi-host settings and submits dp 2 x pp 2 from the root namespace (10.77.0.1)
 * with a client that does not join; tensors cross between namespaces over UDP. The losses are the
 * single-device ones, and no node has a socket bound to a wildcard or loopback address.
 * Needs CAP_NET_ADMIN (creating namespaces); without it the test says so and is skipped.
 */
@Tag("slow")
@Timeout(360)
class NetworkNamespacesTest {
    private static final String BRIDGE = "trbr0";
    private static final int HOSTS = 4;
    private final List<String> namespaces = new ArrayList<>();
    private Process launch;

    private static String host(int i) {
        return "10.77.0." + (11 + i);
    }

    private static String run(String... cmd) throws Exception {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(30, TimeUnit.SECONDS) || p.exitValue() != 0) {
            throw new IllegalStateException(String.join(" ", cmd) + " failed: " + out);
        }
        return out;
    }

    private static boolean canCreateNamespaces() {
        try {
            run("ip", "netns", "add", "trh-probe");
            run("ip", "netns", "del", "trh-probe");
            return true;
        } catch (Exception e) {
            return false;
        }
    }

    @AfterEach
    void tearDown() throws Exception {
        if (launch != null && launch.isAlive()) {
            launch.destroy(); // the script's trap stops every node it started
            if (!launch.waitFor(30, TimeUnit.SECONDS)) {
                launch.destroyForcibly();
            }
        }
        for (String ns : namespaces) {
            try {
                for (String pid : run("ip", "netns", "pids", ns).trim().split("\\s+")) {
                    if (!pid.isEmpty()) {
                        ProcessHandle.of(Long.parseLong(pid)).ifPresent(ProcessHandle::destroyForcibly);
                    }
                }
                run("ip", "netns", "del", ns);
            } catch (Exception e) {
                System.err.println("cleanup: " + e.getMessage());
            }
        }
        try {
            run("ip", "link", "del", BRIDGE);
        } catch (Exception e) {
            System.err.println("cleanup: " + e.getMessage());
        }
    }

    private void createHosts() throws Exception {
        run("ip", "link", "add", BRIDGE, "type", "bridge");
        run("ip", "addr", "add", "10.77.0.1/24", "dev", BRIDGE);
        run("ip", "link", "set", BRIDGE, "up");
        for (int i = 0; i < HOSTS; i++) {
            String ns = "trh-" + host(i);
            run("ip", "netns", "add", ns);
            namespaces.add(ns);
            String outside = "trv" + i + "a";
            String inside = "trv" + i + "b";
            run("ip", "link", "add", outside, "type", "veth", "peer", "name", inside);
            run("ip", "link", "set", outside, "master", BRIDGE, "up");
            run("ip", "link", "set", inside, "netns", ns);
            run("ip", "-n", ns, "addr", "add", host(i) + "/24", "dev", inside);
            run("ip", "-n", ns, "link", "set", inside, "up");
            run("ip", "-n", ns, "link", "set", "lo", "up");
        }
    }

    /** Every socket of a namespace whose local address is a wildcard or loopback, as /proc/net lines. */
    static List<String> wildcardOrLoopbackSockets(String ns) throws Exception {
        List<String> bad = new ArrayList<>();
        for (String table : List.of("tcp", "udp", "tcp6", "udp6")) {
            String text = run("ip", "netns", "exec", ns, "cat", "/proc/net/" + table);
            for (String line : text.lines().skip(1).toList()) {
                String local = line.trim().split("\\s+")[1];
                String addr = local.substring(0, local.indexOf(':')).toUpperCase(Locale.ROOT);
                boolean wild = addr.matches("0+") || addr.equals("0000000000000000FFFF000000000000");
                boolean loop = addr.equals("0100007F") || addr.equals("00000000000000000000000001000000")
                    || addr.equals("0000000000000000FFFF00000100007F");
                if (wild || loop) {
                    bad.add(table + ": " + line.trim());
                }
            }
        }
        return bad;
    }

    private static List<Double> losses(Path metricsCsv) throws Exception {
        List<String> rows = Files.readAllLines(metricsCsv);
        int column = List.of(rows.get(0).split(",")).indexOf("loss");
        List<Double> out = new ArrayList<>();
        for (String row : rows.subList(1, rows.size())) {
            out.add(Double.parseDouble(row.split(",", -1)[column]));
        }
        return out;
    }

    @Test
    void shouldTrainDpTwoByPpTwoAcrossFourNamespacesOverUdpWithSingleDeviceLosses(@TempDir Path tmp) throws Exception {
        Assumptions.assumeTrue(canCreateNamespaces(),
            "cannot create network namespaces here (needs root or CAP_NET_ADMIN and the ip tool): skipped");
        createHosts();
        Path hosts = tmp.resolve("hosts.txt");
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < HOSTS; i++) {
            sb.append(host(i)).append(":25520 1\n");
        }
        Files.writeString(hosts, sb.toString());

        String[] train = {"--model", "tiny", "--microbatches", "2", "--batch", "4", "--steps", "12", "--seed", "9",
            "--eval-interval", "0"};
        // the nodes' command (the script word-splits it): a ChildJvm command line without arguments
        List<String> javaCmd = ChildJvm.command(TroupeCli.class, List.of("-Xmx1g"), List.of());
        Path root = Path.of(System.getProperty("user.dir")).getParent();
        List<String> cmd = new ArrayList<>(List.of("bash", root.resolve("scripts/launch-cluster.sh").toString(), hosts.toString(),
            "--layout", "2x2", "--out", tmp.resolve("cluster").toString(), "--timeout-s", "240"));
        cmd.addAll(List.of(train));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).directory(root.toFile());
        pb.environment().put("TROUPE_CMD", String.join(" ", javaCmd));
        pb.environment().put("TROUPE_REMOTE", "ip netns exec trh-{host}");
        pb.environment().put("TROUPE_REMOTE_CONF", root.resolve("cluster-config/multi-host.conf").toString());
        pb.environment().put("TROUPE_LOG_DIR", Files.createDirectory(tmp.resolve("logs")).toString());
        launch = pb.start();

        StringBuilder log = new StringBuilder();
        CountDownLatch firstStep = new CountDownLatch(1);
        Thread reader = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(launch.getInputStream(), StandardCharsets.UTF_8))) {
                for (String line; (line = r.readLine()) != null; ) {
                    System.out.println("launch-cluster: " + line);
                    synchronized (log) {
                        log.append(line).append('\n');
                    }
                    if (line.startsWith("step ")) {
                        firstStep.countDown();
                    }
                }
            } catch (java.io.IOException e) {
                System.err.println("launch-cluster output: " + e.getMessage());
            }
        }, "launch-cluster-output");
        reader.start();
        boolean stepped = firstStep.await(240, TimeUnit.SECONDS);
        String nodeLogs = nodeLogs(tmp.resolve("logs"));
        assertTrue(stepped, "no step within 240 s:\n" + log + nodeLogs);

        // While the job runs: every socket of every node is on its own 10.77.0.x address.
        for (String ns : namespaces) {
            String sockets = run("ip", "netns", "exec", ns, "cat", "/proc/net/udp");
            assertTrue(sockets.lines().count() > 1, ns + " has no UDP socket: the data plane is not on UDP");
            List<String> bad = wildcardOrLoopbackSockets(ns);
            assertTrue(bad.isEmpty(), ns + " has sockets on a wildcard or loopback address: " + bad);
        }

        // The seed's Prometheus endpoint, on its own address: the job went through its gateway.
        java.net.http.HttpResponse<String> metrics = java.net.http.HttpClient.newHttpClient().send(
            java.net.http.HttpRequest.newBuilder(java.net.URI.create("http://" + host(0) + ":9464/metrics"))
                .timeout(java.time.Duration.ofSeconds(10)).build(), java.net.http.HttpResponse.BodyHandlers.ofString());
        assertEquals(200, metrics.statusCode());
        assertTrue(metrics.body().contains("troupe_steps_committed_total") && metrics.body().contains("jvm_memory_used_bytes"),
            metrics.body());

        assertTrue(launch.waitFor(240, TimeUnit.SECONDS), "launch-cluster.sh did not end:\n" + log);
        reader.join(10_000);
        assertEquals(0, launch.exitValue(), "launch-cluster.sh failed:\n" + log + nodeLogs(tmp.resolve("logs")));
        for (String ns : namespaces) {
            assertEquals("", run("ip", "netns", "pids", ns).trim(), "a node in " + ns + " is still running after the script ended");
        }

        List<String> single = new ArrayList<>(List.of("train", "--layout", "1x1", "--out", tmp.resolve("single").toString()));
        single.addAll(List.of(train));
        ByteArrayOutputStream sink = new ByteArrayOutputStream();
        assertEquals(0, TroupeCli.run(single.toArray(String[]::new), new PrintStream(sink, true, StandardCharsets.UTF_8),
            new PrintStream(sink, true, StandardCharsets.UTF_8)), sink.toString(StandardCharsets.UTF_8));
        List<Double> ref = losses(tmp.resolve("single/metrics.csv"));
        List<Double> got = losses(tmp.resolve("cluster/metrics.csv"));
        assertEquals(ref.size(), got.size());
        for (int i = 0; i < ref.size(); i++) {
            System.out.printf(Locale.ROOT, "step %d: 4 namespaces %.7f, single device %.7f%n", i + 1, got.get(i), ref.get(i));
            assertEquals(ref.get(i), got.get(i), 1e-5 * ref.get(i), "step " + (i + 1));
        }
    }

    private static String nodeLogs(Path dir) throws Exception {
        StringBuilder sb = new StringBuilder();
        try (var files = Files.list(dir)) {
            for (Path f : files.sorted().toList()) {
                String text = Files.readString(f);
                sb.append("\n--- ").append(f.getFileName()).append(" (last 3000 chars)\n")
                    .append(text.substring(Math.max(0, text.length() - 3000)));
            }
        }
        return sb.toString();
    }
}
