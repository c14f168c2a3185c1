package io.troupe.actors.cluster;

import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.http.javadsl.model.Uri;
import org.apache.pekko.management.cluster.bootstrap.ClusterBootstrap;
import org.apache.pekko.management.javadsl.PekkoManagement;

/**
 * Starts Pekko Management on a node ({@link ManagementSettings}): the HTTP endpoint with the liveness and
 * readiness probes, and with Kubernetes bootstrap, Cluster Bootstrap, which finds the other pods through the
 * Kubernetes API, and either joins the cluster they form or, being the lowest-addressed of the
 * required contact points with no cluster yet, forms it. The endpoint stops with the actor system.
 */
public final class ClusterManagement {
    private ClusterManagement() {
    }

    /**
     * Starts what {@code settings} ask for on {@code system} (nothing when the endpoint is off).
     *
     * @return the endpoint's base URL with the port it bound (the one the kernel picked when
     *         {@code troupe.management.port} is 0), or null when the endpoint is off
     * @throws IllegalStateException naming the address when the endpoint does not start within 30 s
     */
    public static String start(ActorSystem<?> system, ManagementSettings settings) {
        if (!settings.enabled()) {
            return null;
        }
        Uri bound;
        try {
            bound = PekkoManagement.get(system.classicSystem()).start().toCompletableFuture().get(30, TimeUnit.SECONDS);
        } catch (Exception e) {
            throw new IllegalStateException("the management endpoint did not start on " + settings.url() + ": " + e, e);
        }
        if (settings.bootstrapsOnKubernetes()) {
            ClusterBootstrap.get(system.classicSystem()).start();
        }
        return "http://" + settings.hostname() + ":" + bound.port();
    }
}
