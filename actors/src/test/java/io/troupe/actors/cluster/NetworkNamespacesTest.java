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
 * own address in a 10.A.B.0/24 no address or route of this machine overlaps, its own node process and
 * media driver. scripts/launch-cluster.sh starts one node per namespace with the multi-host settings and
 * submits dp 2 x pp 2 from the root namespace (10.A.B.1) with a client that does not join; tensors
 * cross between namespaces over UDP. The losses are the single-device ones, and no node has a socket
 * bound to a wildcard or loopback address.
 * The namespaces, bridge and veths come from scripts/lib/netns.sh (as scripts/chaos uses them), named
 * after this JVM's pid: two runs at once never collide, and one killed midway leaves names the next run
 * sweeps away. Needs CAP_NET_ADMIN (creating namespaces); without it the test says so and is skipped.
 */
@Tag("slow")
@Timeout(360)
class NetworkNamespacesTest {
    private static final int HOSTS = 4;
    private static final Path ROOT = Path.of(System.getProperty("user.dir")).getParent();
    private static final String OWNER = Long.toString(ProcessHandle.current().pid());
    private final List<String> namespaces = new ArrayList<>();
    private final List<String> hosts = new ArrayList<>();
    private final List<Process> others = new ArrayList<>();
    private String remote;
    private Process launch;

    private static String run(String... cmd) throws Exception {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(30, TimeUnit.SECONDS) || p.exitValue() != 0) {
            throw new IllegalStateException(String.join(" ", cmd) + " failed: " + out);
        }
        return out;
    }

    /** SCRIPT run by bash after sourcing scripts/lib/netns.sh, its names owned by OWNER_PID. */
    private static String netns(String ownerPid, String script) throws Exception {
        ProcessBuilder pb = new ProcessBuilder("bash", "-c", "source \"$0\" && " + script,
            ROOT.resolve("scripts/lib/netns.sh").toString()).redirectErrorStream(true);
        pb.environment().put("TROUPE_NETNS_OWNER", ownerPid);
        Process p = pb.start();
        p.getOutputStream().close();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(60, TimeUnit.SECONDS) || p.exitValue() != 0) {
            throw new IllegalStateException("netns.sh: " + script + " failed: " + out);
        }
        return out;
    }

    private static String netns(String script) throws Exception {
        return netns(OWNER, script);
    }

    private static boolean canCreateNamespaces() {
        try {
            netns("troupe_netns_available");
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
        for (Process p : others) {
            p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
        }
        // also after a setup that failed halfway: every name of this owner, whatever exists of them
        if (canCreateNamespaces()) {
            netns("troupe_netns_destroy");
            String left = run("ip", "netns", "list") + run("ip", "-o", "link", "show");
            assertTrue(!left.contains("tru-" + OWNER + "-") && !left.contains("tru" + OWNER + "b")
                && !left.contains("tru" + OWNER + "v"), "left behind:\n" + left);
        }
    }

    private void createHosts() throws Exception {
        String out = netns("troupe_netns_create " + HOSTS + " && troupe_netns_remote"
            + " && for i in $(seq 1 " + HOSTS + "); do echo \"$(troupe_netns_name $i) $(troupe_netns_host $i)\"; done");
        List<String> lines = out.lines().toList();
        remote = lines.get(lines.size() - HOSTS - 1);
        for (String line : lines.subList(lines.size() - HOSTS, lines.size())) {
            namespaces.add(line.split(" ")[0]);
            hosts.add(line.split(" ")[1]);
        }
    }

    private String host(int i) {
        return hosts.get(i);
    }

    @Test
    void shouldSweepOnlyLeftoversWhoseOwnerIsGoneAndTakeASubnetNothingHereUses() throws Exception {
        Assumptions.assumeTrue(canCreateNamespaces(),
            "cannot create network namespaces here (needs root or CAP_NET_ADMIN and the ip tool): skipped");
        Process gone = new ProcessBuilder("true").start();
        assertTrue(gone.waitFor(10, TimeUnit.SECONDS));
        Process running = new ProcessBuilder("sleep", "300").start();
        others.add(running);
        String dead = Long.toString(gone.pid());
        String live = Long.toString(running.pid());
        // the /24 this owner would take first, held by the live owner's bridge
        long idx = Long.parseLong(OWNER) % 65536;
        String taken = "10." + (idx >> 8) + "." + (idx & 255);
        try {
            for (String owner : List.of(dead, live)) {
                run("ip", "netns", "add", "tru-" + owner + "-10.0.0.11");
                run("ip", "link", "add", "tru" + owner + "b", "type", "bridge");
                run("ip", "link", "add", "tru" + owner + "v1a", "type", "veth", "peer", "name", "tru" + owner + "v1b");
            }
            run("ip", "addr", "add", taken + ".1/24", "dev", "tru" + live + "b");

            String net = netns("troupe_netns_create 1 && echo \"$TROUPE_NETNS_NET\"").trim();

            String namespacesNow = run("ip", "netns", "list");
            String linksNow = run("ip", "-o", "link", "show");
            System.out.printf(Locale.ROOT, "owner %s took %s (%s held by live owner %s); dead owner %s%n", OWNER, net,
                taken, live, dead);
            assertTrue(net.matches("10\\.\\d+\\.\\d+") && !net.equals(taken), "subnet " + net + ", taken " + taken);
            assertTrue(!namespacesNow.contains("tru-" + dead + "-") && !linksNow.contains("tru" + dead + "b")
                && !linksNow.contains("tru" + dead + "v1"), "a dead owner's leftovers stay:\n" + namespacesNow
                + linksNow);
            assertTrue(namespacesNow.contains("tru-" + live + "-10.0.0.11") && linksNow.contains("tru" + live + "b")
                && linksNow.contains("tru" + live + "v1a"), "a live owner's names were removed:\n" + namespacesNow
                + linksNow);
            assertTrue(namespacesNow.contains("tru-" + OWNER + "-" + net + ".11"), namespacesNow);
        } finally {
            netns(live, "troupe_netns_destroy");
            netns(dead, "troupe_netns_destroy");
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

        String[] train = {"--model", "tiny", "--microbatches", "2", "--batch", "4", "--steps", "30", "--seed", "9",
            "--eval-interval", "0"};
        // the nodes' command (the script word-splits it): a ChildJvm command line without arguments
        List<String> javaCmd = ChildJvm.command(TroupeCli.class, List.of("-Xmx1g"), List.of());
        Path root = ROOT;
        List<String> cmd = new ArrayList<>(List.of("bash", root.resolve("scripts/launch-cluster.sh").toString(),
            hosts.toString(), "--layout", "2x2", "--out", tmp.resolve("cluster").toString(), "--timeout-s", "240"));
        cmd.addAll(List.of(train));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).directory(root.toFile());
        pb.environment().put("TROUPE_CMD", String.join(" ", javaCmd));
        pb.environment().put("TROUPE_REMOTE", remote);
        pb.environment().put("TROUPE_REMOTE_CONF", root.resolve("cluster-config/multi-host.conf").toString());
        pb.environment().put("TROUPE_LOG_DIR", Files.createDirectory(tmp.resolve("logs")).toString());
        launch = pb.start();

        StringBuilder log = new StringBuilder();
        CountDownLatch firstStep = new CountDownLatch(1);
        Thread reader = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(
                new InputStreamReader(launch.getInputStream(), StandardCharsets.UTF_8))) {
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

        // While the job runs (30 steps leave a few seconds), the quick check first: the seed's Prometheus
        // endpoint, on its own address (the job went through its gateway).
        java.net.http.HttpResponse<String> metrics = java.net.http.HttpClient.newHttpClient().send(
            java.net.http.HttpRequest.newBuilder(java.net.URI.create("http://" + host(0) + ":9464/metrics"))
                .timeout(java.time.Duration.ofSeconds(10)).build(), java.net.http.HttpResponse.BodyHandlers.ofString());
        assertEquals(200, metrics.statusCode());
        assertTrue(metrics.body().contains("troupe_steps_committed_total")
            && metrics.body().contains("jvm_memory_used_bytes"), metrics.body());

        // Every socket of every node is on its own 10.A.B.x address.
        for (String ns : namespaces) {
            String sockets = run("ip", "netns", "exec", ns, "cat", "/proc/net/udp");
            assertTrue(sockets.lines().count() > 1, ns + " has no UDP socket: the data plane is not on UDP");
            List<String> bad = wildcardOrLoopbackSockets(ns);
            assertTrue(bad.isEmpty(), ns + " has sockets on a wildcard or loopback address: " + bad);
        }

        assertTrue(launch.waitFor(240, TimeUnit.SECONDS), "launch-cluster.sh did not end:\n" + log);
        reader.join(10_000);
        assertEquals(0, launch.exitValue(), "launch-cluster.sh failed:\n" + log + nodeLogs(tmp.resolve("logs")));
        for (String ns : namespaces) {
            assertEquals("", run("ip", "netns", "pids", ns).trim(), "a node in " + ns
                + " is still running after the script ended");
        }

        List<String> single =
            new ArrayList<>(List.of("train", "--layout", "1x1", "--out", tmp.resolve("single").toString()));
        single.addAll(List.of(train));
        ByteArrayOutputStream sink = new ByteArrayOutputStream();
        assertEquals(0, TroupeCli.run(single.toArray(String[]::new),
            new PrintStream(sink, true, StandardCharsets.UTF_8), new PrintStream(sink, true, StandardCharsets.UTF_8)),
            sink.toString(StandardCharsets.UTF_8));
        List<Double> ref = losses(tmp.resolve("single/metrics.csv"));
        List<Double> got = losses(tmp.resolve("cluster/metrics.csv"));
        assertEquals(ref.size(), got.size());
        for (int i = 0; i < ref.size(); i++) {
            System.out.printf(Locale.ROOT, "step %d: 4 namespaces %.7f, single device %.7f%n", i + 1, got.get(i),
                ref.get(i));
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
