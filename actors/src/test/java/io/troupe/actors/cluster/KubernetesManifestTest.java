package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.troupe.actors.metrics.MetricsSettings;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The Kubernetes manifest agrees with the code and the image: its node config is valid settings,
 * the ports it opens are the ones the nodes use, every volume claim and config map it mounts is
 * defined in it, the service is the one the StatefulSet and the Job name, the pods bootstrap through
 * the Kubernetes API with the labels, port name, contact-point count (= replicas) and service account
 * the code and RBAC need, the probes hit the management endpoint's paths, and the image and launcher
 * are the ones the Dockerfile builds.
 */
class KubernetesManifestTest {
    private static final Path ROOT = Path.of(System.getProperty("user.dir")).getParent();

    private static List<String> all(String text, String regex) {
        List<String> out = new ArrayList<>();
        Matcher m = Pattern.compile(regex).matcher(text);
        while (m.find()) {
            out.add(m.group(1));
        }
        return out;
    }

    /** The YAML documents of the manifest, each as text. */
    private static List<String> documents(String yaml) {
        List<String> docs = new ArrayList<>();
        for (String d : yaml.split("(?m)^---\\s*$")) {
            if (d.contains("kind:")) {
                docs.add(d);
            }
        }
        return docs;
    }

    private static String kind(List<String> docs, String kind) {
        return docs.stream().filter(d -> d.contains("\nkind: " + kind + "\n")).findFirst()
            .orElseThrow(() -> new AssertionError("no " + kind + " in the manifest"));
    }

    private static String name(String doc) {
        return all(doc, "(?m)^metadata:\\s*\\n\\s+name: ([\\w.-]+)").get(0);
    }

    @Test
    void shouldAgreeWithTheCodeAndTheImage() throws Exception {
        String yaml = Files.readString(ROOT.resolve("cluster-config/k8s/troupe.yaml"));
        List<String> docs = documents(yaml);
        assertEquals(Set.of("ServiceAccount", "Role", "RoleBinding", "Service", "ConfigMap", "StatefulSet",
            "PersistentVolumeClaim", "Job"), Set.copyOf(all(yaml, "(?m)^kind: (\\w+)")));
        for (String d : docs) {
            assertTrue(d.contains("apiVersion: "), "a document without apiVersion:\n" + d);
            assertTrue(!d.contains("\t"), "tabs in YAML:\n" + d);
        }

        String nodeConf = yaml.substring(yaml.indexOf("node.conf: |") + "node.conf: |".length(), yaml.indexOf("---",
            yaml.indexOf("node.conf: |")));
        Config pod = ConfigFactory.parseString(nodeConf.stripIndent()).withFallback(ConfigFactory.load()).resolve();
        NodeSettings node = NodeSettings.from(pod);
        int udpPort = TransportConfig.from(pod).udpPort();
        MetricsSettings metrics = MetricsSettings.from(pod);
        ClusterSecurity.from(pod);
        ManagementSettings management = ManagementSettings.from(pod);
        assertTrue(management.enabled() && management.bootstrapsOnKubernetes(), "pods bootstrap through the API");
        assertTrue(node.seeds().isEmpty(), "no static seed: " + node.seeds());
        assertTrue(node.roles().containsAll(List.of("worker", "coordinator")), "every pod coordinator-eligible");
        assertTrue(nodeConf.contains("hostname = ${?POD_IP}"), "management advertises the pod IP");

        String service = kind(docs, "Service");
        String statefulSet = kind(docs, "StatefulSet");
        String serviceName = name(service);
        assertEquals(serviceName, all(statefulSet, "serviceName: ([\\w.-]+)").get(0));
        Set<String> labels = new LinkedHashSet<>(all(service, "selector: \\{app: ([\\w-]+)\\}"));
        assertEquals(labels, new LinkedHashSet<>(all(statefulSet, "labels: \\{app: ([\\w-]+)\\}")));
        assertEquals(List.of(node.port() + "/TCP", udpPort + "/UDP", management.port() + "/TCP"),
            all(service, "port: (\\d+, protocol: \\w+)").stream().map(p -> p.replace(", protocol: ", "/")).toList());
        assertEquals(List.of(node.port() + "/TCP", udpPort + "/UDP", management.port() + "/TCP",
            metrics.port() + "/TCP"), all(statefulSet, "containerPort: (\\d+, protocol: \\w+)").stream()
            .map(p -> p.replace(", protocol: ", "/")).toList());
        assertTrue(statefulSet.contains("prometheus.io/port: \"" + metrics.port() + "\""), statefulSet);

        // Bootstrap finds the pods by label and the management port by name; it forms the cluster once it sees
        // required-contact-points of them: the replicas.
        assertEquals(Set.of(String.format(management.podLabelSelector(), management.serviceName())),
            labels.stream().map(l -> "app=" + l).collect(java.util.stream.Collectors.toSet()));
        assertTrue(statefulSet.contains("{name: " + ManagementSettings.PORT_NAME + ", containerPort: "
            + management.port() + ", protocol: TCP}"), "the management port is named " + ManagementSettings.PORT_NAME);
        assertEquals(List.of(management.requiredContactPoints()),
            all(statefulSet, "replicas: (\\d+)").stream().map(Integer::valueOf).toList());
        assertEquals(List.of(ManagementSettings.READINESS_PATH + ", port: " + ManagementSettings.PORT_NAME),
            all(statefulSet, "readinessProbe:\\s*\\n\\s+httpGet: \\{path: ([^}]+)\\}"));
        assertEquals(List.of(ManagementSettings.LIVENESS_PATH + ", port: " + ManagementSettings.PORT_NAME),
            all(statefulSet, "livenessProbe:\\s*\\n\\s+httpGet: \\{path: ([^}]+)\\}"));
        assertTrue(statefulSet.contains("fieldPath: status.podIP"), "POD_IP from the downward API");
        String account = name(kind(docs, "ServiceAccount"));
        assertEquals(List.of(account), all(statefulSet, "serviceAccountName: ([\\w.-]+)"));
        String role = kind(docs, "Role");
        assertTrue(role.contains("resources: [pods]") && role.contains("verbs: [get, watch, list]"), role);
        String binding = kind(docs, "RoleBinding");
        assertTrue(binding.contains("{kind: ServiceAccount, name: " + account + "}")
            && binding.contains("name: " + name(role)), binding);

        // The Job submits to pod 0 of the StatefulSet behind the service, on the node port, and advertises its
        // pod IP (the downward API) for the coordinator's answers.
        String member = name(statefulSet) + "-0." + serviceName + ":" + node.port();
        String job = kind(docs, "Job");
        assertTrue(job.contains("\"--cluster\", \"" + member + "\""), "the Job must submit to " + member);
        assertTrue(job.contains("fieldPath: status.podIP") && job.contains("\"--hostname\", \"$(POD_IP)\""), job);

        Set<String> claims = new LinkedHashSet<>(all(yaml, "claimName: ([\\w.-]+)"));
        assertEquals(Set.of(name(kind(docs, "PersistentVolumeClaim"))), claims);
        assertTrue(kind(docs, "PersistentVolumeClaim").contains("ReadWriteMany"),
            "the runs volume must be ReadWriteMany");
        assertEquals(Set.of(name(kind(docs, "ConfigMap"))), Set.copyOf(all(yaml, "configMap: \\{name: ([\\w.-]+)\\}")));
        for (String mount : all(yaml, "mountPath: (/data/runs)")) {
            assertTrue(pod.getStringList("troupe.cluster.allowed-roots").contains(mount),
                "paths on the runs volume must be allowed: " + mount);
        }

        String dockerfile = Files.readString(ROOT.resolve("Dockerfile"));
        String version = all(dockerfile, "ARG TROUPE_VERSION=(\\S+)").get(0);
        assertEquals(Set.of("troupe:" + version), Set.copyOf(all(yaml, "image: (\\S+)")));
        assertTrue(dockerfile.contains("/opt/troupe/"), dockerfile);
        for (String command : all(yaml, "command: \\[\"([^\"]+)\"")) {
            assertEquals("/opt/troupe/bin/troupe", command);
        }
        for (String port : List.of(node.port() + "/tcp", udpPort + "/udp", metrics.port() + "/tcp",
            management.port() + "/tcp")) {
            assertTrue(dockerfile.contains(port), "the Dockerfile should EXPOSE " + port);
        }
    }

    /**
     * The serving manifest: its command is a valid {@code troupe serve} line (it gets as far as looking
     * for the checkpoint), on the port its Service, probe and scrape annotation use; the readiness
     * probe is {@code /health} (503 while draining); the grace period covers the preStop pause and
     * the drain; the checkpoint is on the training manifest's runs volume; the image is the Dockerfile's.
     */
    @Test
    void shouldServeTheTrainingRunsCheckpointAndDrainWithinTheGracePeriod(@TempDir Path emptyRun) throws Exception {
        String yaml = Files.readString(ROOT.resolve("cluster-config/k8s/troupe-serve.yaml"));
        String training = Files.readString(ROOT.resolve("cluster-config/k8s/troupe.yaml"));
        List<String> docs = documents(yaml);
        assertEquals(2, docs.size());
        String deployment = kind(docs, "Deployment");
        String service = kind(docs, "Service");

        List<String> args = new ArrayList<>();
        String command = all(deployment, "(?s)command: \\[(.*?)\\]\\s*\\n\\s*ports:").get(0);
        for (String a : all(command, "\"([^\"]*)\"")) {
            args.add(a);
        }
        assertEquals("/opt/troupe/bin/troupe", args.get(0));
        assertEquals("serve", args.get(1));
        int port = Integer.parseInt(args.get(args.indexOf("--port") + 1));
        String checkpoint = args.get(args.indexOf("--checkpoint") + 1);
        int drain = Integer.parseInt(args.get(args.indexOf("--drain-timeout") + 1));
        // the options parse: in a run directory with no checkpoint yet, serve stops at loading it (exit 4), not at a
        // usage error (2)
        List<String> local = new ArrayList<>(args.subList(1, args.size()));
        local.set(local.indexOf("--checkpoint") + 1, emptyRun.toString());
        local.set(local.indexOf("--port") + 1, "0");
        java.io.ByteArrayOutputStream err = new java.io.ByteArrayOutputStream();
        int code = io.troupe.actors.cli.TroupeCli.run(local.toArray(String[]::new),
            new java.io.PrintStream(new java.io.ByteArrayOutputStream(), true),
            new java.io.PrintStream(err, true, java.nio.charset.StandardCharsets.UTF_8));
        assertEquals(4, code, "serve's options in the manifest: " + err);

        assertEquals(List.of(port + ", protocol: TCP"), all(deployment, "containerPort: (\\d+, protocol: \\w+)"));
        assertEquals(List.of("8080, targetPort: http"), all(service, "port: (\\d+, targetPort: \\w+)"));
        assertEquals(port, 8080);
        assertTrue(deployment.contains("prometheus.io/port: \"" + port + "\""), deployment);
        assertEquals(List.of("/health, port: http"), all(deployment, "readinessProbe:\\s*\\n\\s*httpGet: \\{path: "
            + "([^}]+)\\}"));
        assertEquals(List.of("/health/live, port: http"), all(deployment, "livenessProbe:\\s*\\n\\s*httpGet: \\{path: "
            + "([^}]+)\\}"));
        assertEquals(Set.of("troupe-serve"), Set.copyOf(all(yaml, "app: ([\\w-]+)")));
        int grace = Integer.parseInt(all(deployment, "terminationGracePeriodSeconds: (\\d+)").get(0));
        int pause = Integer.parseInt(all(deployment, "command: \\[\"sleep\", \"(\\d+)\"\\]").get(0));
        assertTrue(grace > pause + drain, "grace " + grace + " s must exceed preStop " + pause + " + drain " + drain);

        String claim = all(deployment, "claimName: ([\\w.-]+)").get(0);
        assertEquals(name(kind(documents(training), "PersistentVolumeClaim")), claim);
        String mount = all(deployment, "mountPath: (\\S+?),").get(0);
        assertTrue(checkpoint.startsWith(mount + "/"), checkpoint + " on the runs volume " + mount);
        assertTrue(training.contains("\"--out\", \"" + checkpoint + "\""),
            "the checkpoint is the training Job's --out: " + checkpoint);
        String version = all(Files.readString(ROOT.resolve("Dockerfile")), "ARG TROUPE_VERSION=(\\S+)").get(0);
        assertEquals(Set.of("troupe:" + version), Set.copyOf(all(yaml, "image: (\\S+)")));
    }

    /**
     * The nodes' JVM memory is the documented split of their pod's limit (docs/deploy.md): a heap of 1/4, a
     * direct-memory limit (the in-memory snapshot slots) of 3/8, and 3/8 left for the native tensors, /dev/shm
     * and the JVM itself.
     */
    @Test
    void shouldSplitTheNodesMemoryLimitBetweenHeapDirectMemoryAndTheRest() throws Exception {
        String statefulSet = kind(documents(Files.readString(ROOT.resolve("cluster-config/k8s/troupe.yaml"))),
            "StatefulSet");
        String opts = all(statefulSet, "name: TROUPE_JAVA_OPTS\\s*\\n\\s+value: \"([^\"]+)\"").get(0);
        long limitMib = 1024L * Integer.parseInt(all(statefulSet, "limits: \\{memory: (\\d+)Gi\\}").get(0));
        long heapMib = limitMib * Integer.parseInt(all(opts, "-XX:MaxRAMPercentage=(\\d+)").get(0)) / 100;
        long directMib = 1024L * Integer.parseInt(all(opts, "-XX:MaxDirectMemorySize=(\\d+)g").get(0));
        assertEquals(limitMib / 4, heapMib, opts);
        assertEquals(limitMib * 3 / 8, directMib, opts);
        String shm = all(statefulSet, "medium: Memory, sizeLimit: (\\d+)Gi").get(0);
        assertTrue(1024L * Integer.parseInt(shm) < limitMib - heapMib - directMib, "/dev/shm fits the rest");
    }
}
