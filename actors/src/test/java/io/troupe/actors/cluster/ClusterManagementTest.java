package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.troupe.runtime.testkit.RefusingPort;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Pekko Management on a real node on 127.0.0.1: the liveness and readiness probes answer over HTTP, ready
 * once the node is an Up member; off by default; Kubernetes bootstrap is refused without the endpoint and,
 * when on, sets Pekko's discovery and drops the seed nodes.
 */
@Timeout(90)
class ClusterManagementTest {
    private final List<AutoCloseable> open = new ArrayList<>();

    @AfterEach
    void closeAll() throws Exception {
        for (int i = open.size() - 1; i >= 0; i--) {
            open.get(i).close();
        }
    }

    private static HttpResponse<String> get(String url) throws Exception {
        return HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(10))
            .build(), HttpResponse.BodyHandlers.ofString());
    }

    @Test
    void shouldAnswerTheLivenessAndReadinessProbesOfARunningNode() throws Exception {
        Config config = ConfigFactory.parseString("troupe.management { enabled = on, port = 0 }")
            .withFallback(ConfigFactory.load());
        NodeSettings settings = NodeSettings.from(config).withPort(0).withRoles(List.of("coordinator"), 0);
        TroupeNode node = TroupeNode.start(settings, config, null);
        open.add(node);
        // port 0: the endpoint binds a port no other process holds, and the node reports it
        String url = node.managementUrl();
        assertTrue(url.matches("http://127\\.0\\.0\\.1:[1-9][0-9]*"), "binds the node's own address: " + url);
        assertEquals(200, get(url + ManagementSettings.LIVENESS_PATH).statusCode());
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        HttpResponse<String> ready = get(url + ManagementSettings.READINESS_PATH);
        while (ready.statusCode() != 200) {
            assertTrue(System.nanoTime() < deadline, "never ready: " + ready.statusCode() + " " + ready.body());
            Thread.sleep(100); // the node joins itself; the deadline bounds the wait
            ready = get(url + ManagementSettings.READINESS_PATH);
        }
        System.out.println("ready: " + ready.body() + ", alive: " + get(url + ManagementSettings.LIVENESS_PATH).body());
        assertEquals(404, get(url + "/no-such-path").statusCode());
    }

    @Test
    void shouldBeAliveButNotReadyWhileTheNodeHasNotJoined() throws Exception {
        Config config = ConfigFactory.parseString("troupe.management { enabled = on, port = 0 }")
            .withFallback(ConfigFactory.load());
        // its only seed is a port nobody listens on (held so for the test): it keeps trying to join
        RefusingPort deadSeed = RefusingPort.open();
        open.add(deadSeed);
        NodeSettings settings = NodeSettings.from(config).withPort(0).withRoles(List.of("coordinator"), 0)
            .withSeeds(List.of(deadSeed.hostPort()));
        TroupeNode node = TroupeNode.start(settings, config, null);
        open.add(node);
        String url = node.managementUrl();
        assertEquals(200, get(url + ManagementSettings.LIVENESS_PATH).statusCode());
        HttpResponse<String> ready = get(url + ManagementSettings.READINESS_PATH);
        // Kubernetes counts any status from 400 as a failed probe; Pekko Management answers 500
        assertTrue(ready.statusCode() >= 400 && ready.body().contains("ClusterMembershipCheck"),
            ready.statusCode() + " " + ready.body());
        System.out.println("not joined: ready " + ready.statusCode() + " " + ready.body());
    }

    @Test
    void shouldBeOffByDefaultAndBootstrapOnKubernetesOnlyWhenAskedTo() {
        ManagementSettings defaults = ManagementSettings.from(ConfigFactory.load());
        assertFalse(defaults.enabled());
        assertEquals(ManagementSettings.Bootstrap.SEEDS, defaults.bootstrap());
        assertFalse(defaults.pekkoOverlay().hasPath("pekko.management.cluster.bootstrap.contact-point-discovery"
            + ".discovery-method"));

        IllegalArgumentException noEndpoint = assertThrows(IllegalArgumentException.class,
            () -> ManagementSettings.from(ConfigFactory.parseString("troupe.cluster.bootstrap.method = kubernetes")
                .withFallback(ConfigFactory.load())));
        assertTrue(noEndpoint.getMessage().contains("troupe.management.enabled=false"), noEndpoint.getMessage());
        IllegalArgumentException unknown = assertThrows(IllegalArgumentException.class, () -> ManagementSettings.from(
            ConfigFactory.parseString("troupe.cluster.bootstrap.method = consul").withFallback(ConfigFactory.load())));
        assertTrue(unknown.getMessage().contains("method=consul"), unknown.getMessage());

        ManagementSettings k8s = ManagementSettings.from(ConfigFactory.parseString(
            "troupe.management.enabled = on\ntroupe.management.hostname = \"10.1.2.3\"\n"
                + "troupe.cluster.bootstrap { method = kubernetes, required-contact-points = 4 }")
            .withFallback(ConfigFactory.load()));
        Config pekko = k8s.pekkoOverlay().withFallback(ConfigFactory.load()).resolve();
        String cpd = "pekko.management.cluster.bootstrap.contact-point-discovery.";
        assertEquals("kubernetes-api", pekko.getString(cpd + "discovery-method"));
        assertEquals("troupe", pekko.getString(cpd + "service-name"));
        assertEquals(ManagementSettings.PORT_NAME, pekko.getString(cpd + "port-name"));
        assertEquals(4, pekko.getInt(cpd + "required-contact-point-nr"));
        assertEquals("app=%s", pekko.getString("pekko.discovery.kubernetes-api.pod-label-selector"));
        assertEquals("10.1.2.3", pekko.getString("pekko.management.http.hostname"));
        assertTrue(pekko.getStringList("pekko.cluster.seed-nodes").isEmpty());
        // the classes Pekko loads for kubernetes-api discovery and the readiness check are on the class path
        assertTrue(pekko.hasPath("pekko.discovery.kubernetes-api.class"), "pekko-discovery-kubernetes-api missing");
    }
}
