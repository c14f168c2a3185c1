package io.troupe.actors.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What ships beside the product holds to it: every key the configs under cluster-config/ (and the Kubernetes
 * manifest's node config) set, and every {@code -Dtroupe.*} the scripts and docs pass, is one reference.conf lists;
 * the Kubernetes manifests' command lines parse with the CLI's own option parsers; keys and passwords come from a
 * Secret, never a literal in the manifest; a node pod requests the memory its JVM options let it use.
 */
class ShippedConfigTest {
    private static final Path ROOT = Path.of(System.getProperty("user.dir")).getParent();

    @TempDir
    Path tmp;

    private static List<String> all(String text, String regex) {
        List<String> out = new ArrayList<>();
        Matcher m = Pattern.compile(regex).matcher(text);
        while (m.find()) {
            out.add(m.group(1));
        }
        return out;
    }

    private static String read(String path) throws IOException {
        return Files.readString(ROOT.resolve(path));
    }

    /** The manifest's ConfigMap entry {@code node.conf}: its block scalar, indentation removed. */
    private static String nodeConf(String yaml) {
        int start = yaml.indexOf("node.conf: |");
        assertTrue(start >= 0, "no node.conf in the ConfigMap");
        List<String> lines = new ArrayList<>();
        for (String l : yaml.substring(yaml.indexOf('\n', start) + 1).split("\n", -1)) {
            if (!l.isBlank() && !l.startsWith("    ")) {
                break;
            }
            lines.add(l);
        }
        return String.join("\n", lines).stripIndent();
    }

    /** The quoted strings of every {@code command: [...]} flow sequence of a document, one list per command. */
    private static List<List<String>> commands(String yaml) {
        List<List<String>> out = new ArrayList<>();
        for (String c : all(yaml, "(?s)command: \\[(.*?)\\]")) {
            out.add(all(c, "\"([^\"]*)\""));
        }
        return out;
    }

    /** A key misspelt in any section of a --config file is refused with its line and the nearest known key. */
    @Test
    void shouldRefuseAnUnknownKeyInEverySectionNamingTheNearestKnownKey() throws IOException {
        String[][] cases = {
            {"troupe.transport {\n  udp-prot = 40123\n}\n", ": 2: unknown key 'troupe.transport.udp-prot'",
                "nearest known key 'troupe.transport.udp-port'"},
            {"troupe.cluster.tls { enabled = on\n key-stor = x }\n", ": 2: unknown key 'troupe.cluster.tls.key-stor'",
                "nearest known key 'troupe.cluster.tls.key-store'"},
            {"troupe.recovery.max-restart = 2\n", "unknown key 'troupe.recovery.max-restart'",
                "nearest known key 'troupe.recovery.max-restarts'"},
            {"troupe.metrics.prot = 1\n", "unknown key 'troupe.metrics.prot'",
                "nearest known key 'troupe.metrics.port'"},
            {"troupe.managment.enabled = on\n", "unknown key 'troupe.managment'",
                "nearest known key 'troupe.management'"},
            {"troupe.cluster.bootstrap.methd = kubernetes\n", "unknown key 'troupe.cluster.bootstrap.methd'",
                "nearest known key 'troupe.cluster.bootstrap.method'"},
        };
        for (String[] c : cases) {
            Path f = Files.writeString(tmp.resolve("typo.conf"), c[0]);
            UsageException e = assertThrows(UsageException.class, () -> ConfigFiles.parse(f), c[0]);
            assertTrue(e.getMessage().contains(c[1]) && e.getMessage().contains(c[2]), e.getMessage());
        }
        // a key far from every known one gets the list alone
        Path f = Files.writeString(tmp.resolve("far.conf"), "troupe.transport.zzzzzzzz = 1\n");
        UsageException e = assertThrows(UsageException.class, () -> ConfigFiles.parse(f));
        assertTrue(!e.getMessage().contains("nearest") && e.getMessage().contains("known there: aeron-dir,"),
            e.getMessage());
    }

    /** {@code -Dtroupe.SECTION.KEY} is checked as a config file's key; other {@code troupe.} properties pass. */
    @Test
    void shouldRefuseAnUnknownSystemPropertyUnderASectionOfReferenceConf() {
        Properties p = new Properties();
        p.setProperty("troupe.transport.udp-port", "40123");
        p.setProperty("troupe.serve.stage-link.hostname", "10.0.0.1");
        p.setProperty("troupe.cpu.vectorKernels", "false");
        p.setProperty("troupe.cuda.emulator", "/x/libcuda.so.1");
        p.setProperty("troupe.nvcc", "/usr/bin/nvcc");
        p.setProperty("user.dir", "/");
        ConfigFiles.requireKnownProperties(p, ConfigFiles.reference());
        p.setProperty("troupe.transport.udp-loss-rat", "0.05");
        UsageException e = assertThrows(UsageException.class, () -> ConfigFiles.requireKnownProperties(p,
            ConfigFiles.reference()));
        assertTrue(e.getMessage().startsWith("-Dtroupe.transport.udp-loss-rat: unknown key")
            && e.getMessage().contains("nearest known key 'troupe.transport.udp-loss-rate'"), e.getMessage());
    }

    /**
     * The command line refuses such a property before any command runs: exit 2, one line naming it. In a JVM of its
     * own, started with the property, as a user's is (reference.conf with the system properties laid over it would
     * know every key set).
     */
    @Test
    void shouldRefuseAnUnknownSystemPropertyBeforeACommandRuns() throws Exception {
        Path javaBin = Path.of(System.getProperty("java.home"), "bin", "java");
        Process p = new ProcessBuilder(javaBin.toString(), "-Dtroupe.transport.udp-prot=40123", "-cp",
            System.getProperty("java.class.path"), TroupeCli.class.getName(), "checkpoint", "ls", tmp.toString())
            .redirectErrorStream(true).start();
        assertTrue(p.waitFor(60, java.util.concurrent.TimeUnit.SECONDS), "troupe checkpoint ls did not end in 60 s");
        String output = new String(p.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
        assertEquals(2, p.exitValue(), output);
        assertTrue(output.startsWith("troupe checkpoint: -Dtroupe.transport.udp-prot: unknown key")
            && output.contains("nearest known key 'troupe.transport.udp-port'"), output);
        assertEquals(1, output.strip().lines().count(), output);
    }

    /** The shipped configs, the manifest's node config and every -D the scripts and docs pass are known keys. */
    @Test
    void shouldKnowEveryKeyTheShippedConfigsScriptsAndDocsSet() throws IOException {
        for (String name : List.of("local.conf", "multi-host.conf", "examples/train-big.conf")) {
            ConfigFiles.parse(ROOT.resolve("cluster-config").resolve(name));
        }
        ConfigFiles.parse(Files.writeString(tmp.resolve("node.conf"),
            nodeConf(read("cluster-config/k8s/troupe.yaml"))));
        // the commented-out closed-cluster settings too, once uncommented as the comment says
        String closed = nodeConf(read("cluster-config/k8s/troupe.yaml")).replaceAll("(?m)^(\\s*)# (auth-key-file |"
            + "cluster\\.tls \\{|  )", "$1$2");
        Config c = ConfigFiles.parse(Files.writeString(tmp.resolve("closed.conf"), closed));
        assertTrue(c.hasPath("troupe.transport.auth-key-file") && c.hasPath("troupe.cluster.tls.trust-store"), closed);

        Properties props = new Properties();
        List<Path> files = new ArrayList<>();
        try (Stream<Path> s = Stream.concat(Files.walk(ROOT.resolve("scripts")), Files.walk(ROOT.resolve("docs")))) {
            s.filter(Files::isRegularFile).forEach(files::add);
        }
        files.add(ROOT.resolve("README.md"));
        for (Path file : files) {
            for (String kv : all(Files.readString(file), "-D(troupe\\.[\\w.-]+)=")) {
                props.setProperty(kv, file.toString());
            }
        }
        assertTrue(props.containsKey("troupe.transport.udp-corrupt-nth") && props.containsKey("troupe.nvcc"),
            "the -D keys found: " + new TreeSet<>(props.stringPropertyNames()));
        ConfigFiles.requireKnownProperties(props, ConfigFiles.reference());
    }

    /**
     * The manifests' command lines are the product's: the image's entry point is the distribution's launcher
     * (built from dist/src/bin/troupe, as scripts/troupe is the checkout's), the node's options and config parse
     * as {@code troupe node} takes them, and the training Job's as {@code troupe submit} does, with valid values.
     */
    @Test
    void shouldParseTheManifestsCommandLinesWithTheCliOwnParsers() throws IOException {
        String yaml = read("cluster-config/k8s/troupe.yaml");
        String dockerfile = read("Dockerfile");
        assertTrue(dockerfile.contains("ENTRYPOINT [\"/opt/troupe/bin/troupe\"]"), dockerfile);
        assertTrue(Files.isRegularFile(ROOT.resolve("dist/src/bin/troupe")) && read("dist/src/build-dist.sh")
            .contains("\"$root/dist/src/bin/troupe\" > \"$tmp/bin/troupe\""), "the launcher the image runs");
        assertTrue(Files.isExecutable(ROOT.resolve("scripts/troupe")));
        List<List<String>> commands = commands(yaml);
        assertEquals(2, commands.size(), "the node container and the submit Job: " + commands);
        for (List<String> c : commands) {
            assertEquals("/opt/troupe/bin/troupe", c.get(0), c.toString());
        }

        List<String> node = new ArrayList<>(commands.get(0).subList(1, commands.get(0).size()));
        assertEquals("node", node.remove(0));
        int conf = node.indexOf("--config") + 1;
        assertEquals("/etc/troupe/node.conf", node.get(conf));
        assertTrue(yaml.contains("{name: config, mountPath: /etc/troupe}"), "the ConfigMap is mounted at /etc/troupe");
        node.set(conf, Files.writeString(tmp.resolve("node.conf"), nodeConf(yaml)).toString());
        Config cfg = NodeCommand.load(node.toArray(String[]::new));
        assertEquals(25520, cfg.getInt("troupe.cluster.port"));

        List<String> submit = new ArrayList<>(commands.get(1).subList(1, commands.get(1).size()));
        assertEquals("submit", submit.remove(0));
        submit.set(submit.indexOf("--hostname") + 1, "10.0.0.5"); // $(POD_IP), set by Kubernetes
        Options o = SubmitCommand.options(submit.toArray(String[]::new));
        TrainSettings s = TrainSettings.from(o);
        assertEquals(4, s.layout().worldSize(), "the Job's layout fills the StatefulSet's 4 pods");
        assertEquals(cfg.getInt("troupe.cluster.bootstrap.required-contact-points"), s.layout().worldSize());
        assertEquals(cfg.getInt("troupe.cluster.port"), Integer.parseInt(o.get("cluster").split(":")[1]));
    }

    /**
     * No key or password is a literal in a manifest: an environment variable named like one comes from a Secret
     * ({@code secretKeyRef}), and the node config reads such settings from a file or an environment substitution.
     */
    @Test
    void shouldTakeKeysAndPasswordsFromSecretsOnly() throws IOException {
        for (String name : List.of("cluster-config/k8s/troupe.yaml", "cluster-config/k8s/troupe-serve.yaml")) {
            String yaml = read(name);
            Matcher m = Pattern.compile("- name: (\\w*(?:KEY|PASSWORD|SECRET|TOKEN)\\w*)\\s*\\n(\\s*)(\\w+):")
                .matcher(yaml);
            while (m.find()) {
                assertEquals("valueFrom", m.group(3), name + ": " + m.group(1) + " must come from a Secret");
                String after = yaml.substring(m.end(), Math.min(yaml.length(), m.end() + 200));
                assertTrue(after.contains("secretKeyRef"), name + ": " + m.group(1) + " must use secretKeyRef");
            }
        }
        for (String line : nodeConf(read("cluster-config/k8s/troupe.yaml")).split("\n")) {
            String l = line.replaceFirst("^\\s*#\\s*", "").strip();
            Matcher m = Pattern.compile("(auth-key|[\\w-]*password)\\s*=\\s*(\\S+)").matcher(l);
            while (m.find()) {
                assertTrue(m.group(2).startsWith("${"), "a literal " + m.group(1) + " in node.conf: " + line);
            }
        }
    }

    /**
     * A node pod requests the memory its JVM may take (heap and direct limit of the pod's limit, and the rest the
     * documented split leaves to tensors, /dev/shm and the JVM): it requests its limit, so the scheduler places it
     * where that memory is, and it is not the first evicted when the host runs short.
     */
    @Test
    void shouldRequestTheMemoryANodesJvmOptionsAllow() throws IOException {
        String yaml = read("cluster-config/k8s/troupe.yaml");
        String requests = all(yaml, "requests: \\{cpu: \"\\d+\", memory: (\\d+)Gi\\}").get(0);
        String limits = all(yaml, "limits: \\{memory: (\\d+)Gi\\}").get(0);
        String opts = all(yaml, "name: TROUPE_JAVA_OPTS\\s*\\n\\s+value: \"([^\"]+)\"").get(0);
        long limitMib = 1024L * Integer.parseInt(limits);
        long heapMib = limitMib * Integer.parseInt(all(opts, "-XX:MaxRAMPercentage=(\\d+)").get(0)) / 100;
        long directMib = 1024L * Integer.parseInt(all(opts, "-XX:MaxDirectMemorySize=(\\d+)g").get(0));
        long requestMib = 1024L * Integer.parseInt(requests);
        assertTrue(requestMib >= heapMib + directMib, "a request of " + requestMib + " MiB under the heap (" + heapMib
            + " MiB) and direct limit (" + directMib + " MiB) the JVM may take");
        assertEquals(limitMib, requestMib, "the node requests its limit");
    }
}
