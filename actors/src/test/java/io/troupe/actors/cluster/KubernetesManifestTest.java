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

/**
 * The Kubernetes manifest agrees with the code and the image: its node config is valid settings,
 * the ports it opens are the ones the nodes use, every volume claim and config map it mounts is
 * defined in it, the service is the one the StatefulSet and the seed name, and the image and launcher
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
        assertEquals(Set.of("Service", "ConfigMap", "StatefulSet", "PersistentVolumeClaim", "Job"),
            Set.copyOf(all(yaml, "(?m)^kind: (\\w+)")));
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

        String service = kind(docs, "Service");
        String statefulSet = kind(docs, "StatefulSet");
        String serviceName = name(service);
        assertEquals(serviceName, all(statefulSet, "serviceName: ([\\w.-]+)").get(0));
        Set<String> labels = new LinkedHashSet<>(all(service, "selector: \\{app: ([\\w-]+)\\}"));
        assertEquals(labels, new LinkedHashSet<>(all(statefulSet, "labels: \\{app: ([\\w-]+)\\}")));
        assertEquals(List.of(node.port() + "/TCP", udpPort + "/UDP"), all(service, "port: (\\d+, protocol: \\w+)")
            .stream().map(p -> p.replace(", protocol: ", "/")).toList());
        assertEquals(List.of(node.port() + "/TCP", udpPort + "/UDP", metrics.port() + "/TCP"),
            all(statefulSet, "containerPort: (\\d+, protocol: \\w+)").stream().map(p -> p.replace(", protocol: ", "/")).toList());
        assertTrue(statefulSet.contains("prometheus.io/port: \"" + metrics.port() + "\""), statefulSet);

        // The seed is pod 0 of the StatefulSet behind the service, on the node port; the Job submits to it.
        String seed = name(statefulSet) + "-0." + serviceName + ":" + node.port();
        assertEquals(List.of(seed), node.seeds());
        assertTrue(kind(docs, "Job").contains("\"--cluster\", \"" + seed + "\""), "the Job must submit to " + seed);

        Set<String> claims = new LinkedHashSet<>(all(yaml, "claimName: ([\\w.-]+)"));
        assertEquals(Set.of(name(kind(docs, "PersistentVolumeClaim"))), claims);
        assertTrue(kind(docs, "PersistentVolumeClaim").contains("ReadWriteMany"), "the runs volume must be ReadWriteMany");
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
        for (String port : List.of(node.port() + "/tcp", udpPort + "/udp", metrics.port() + "/tcp")) {
            assertTrue(dockerfile.contains(port), "the Dockerfile should EXPOSE " + port);
        }
    }
}
