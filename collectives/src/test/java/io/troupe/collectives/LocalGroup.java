package io.troupe.collectives;

import io.troupe.runtime.testkit.LoopbackDriver;
import io.troupe.runtime.transport.TransportEndpoint;
import io.troupe.runtime.transport.TransportNode;
import io.troupe.runtime.transport.TransportSettings;
import java.util.concurrent.TimeUnit;
import org.agrona.UnsafeApi;

/**
 * {@code n} ranks in this JVM on one embedded driver (IPC), each with its own worker and
 * {@link CollectiveAgent}, all driven by the test thread ({@link #awaitAll}): deterministic and
 * cheap on a 2-core machine.
 */
final class LocalGroup implements AutoCloseable {
    final LoopbackDriver driver;
    final CollectiveAgent[] agents;
    final TransportEndpoint[] endpoints;
    final int n;
    private final TransportNode[] nodes;

    LocalGroup(int n) {
        this(n, settings());
    }

    LocalGroup(int n, TransportSettings settings) {
        this(n, settings, false);
    }

    /**
     * @param nodePerRank each rank on a node of its own that joins the one driver, as node processes of
     *                    one host do: no in-process links, so ranks reach each other through
     *                    shared-memory rings ({@code IpcRing}) like separate processes
     */
    LocalGroup(int n, TransportSettings settings, boolean nodePerRank) {
        this.n = n;
        this.driver = LoopbackDriver.start(settings);
        this.agents = new CollectiveAgent[n];
        this.endpoints = new TransportEndpoint[n];
        this.nodes = new TransportNode[n];
        for (int r = 0; r < n; r++) {
            agents[r] = new CollectiveAgent("rank" + r, null, driver.errors()::add);
            if (nodePerRank && r > 0) {
                nodes[r] = TransportNode.launch(settings.withExternalDriver(driver.node().aeronDir()),
                    driver.errors()::add);
                agents[r].attach(nodes[r].openWorker("rank" + r, r, 1, agents[r], driver.errors()::add));
            } else {
                agents[r].attach(driver.openWorker("rank" + r, r, 1, agents[r]));
            }
            endpoints[r] = agents[r].worker().endpoint();
        }
    }

    /** Small terms so that many IPC publications fit in /dev/shm. */
    static TransportSettings settings() {
        return LoopbackDriver.testSettings().withChunkBytes(256 * 1024).withTermLengthBytes(4 * 1024 * 1024);
    }

    static CollectiveSettings collectiveSettings() {
        return CollectiveSettings.defaults().withPipelineBytes(256 * 1024).withTimeoutNs(TimeUnit.SECONDS.toNanos(20));
    }

    /** One communicator per rank for the whole world as group {@code groupId}. */
    Communicator[] communicators(int groupId, CollectiveSettings s) {
        Communicator[] c = new Communicator[n];
        for (int r = 0; r < n; r++) {
            c[r] = agents[r].communicator(CollectiveGroup.ofWorld(1, groupId, r, endpoints), s);
        }
        return c;
    }

    /** Drives every agent on this thread until all handles are done (bounded). */
    void awaitAll(CollectiveHandle... handles) {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (true) {
            boolean done = true;
            for (CollectiveHandle h : handles) {
                done &= h.isDone();
            }
            if (done) {
                break;
            }
            int work = 0;
            for (CollectiveAgent a : agents) {
                work += a.doWork();
            }
            if (work == 0) {
                Thread.yield();
            }
            if (System.nanoTime() > deadline) {
                throw new AssertionError("collectives not done within 60 s; errors=" + driver.errors());
            }
        }
        for (CollectiveHandle h : handles) {
            if (h.isFailed()) {
                throw h.failure();
            }
        }
    }

    @Override
    public void close() {
        for (CollectiveAgent a : agents) {
            if (a != null) {
                a.close();
            }
        }
        for (TransportNode node : nodes) {
            if (node != null) {
                node.close();
            }
        }
        driver.close();
    }

    /** Native float buffers, one per rank, freed on close. */
    static final class Buffers implements AutoCloseable {
        final long[] raw;
        final long[] address;
        final long count;

        Buffers(int n, long count) {
            this.count = count;
            raw = new long[n];
            address = new long[n];
            for (int r = 0; r < n; r++) {
                raw[r] = UnsafeApi.allocateMemory(count * 4 + 64);
                address[r] = (raw[r] + 63) & -64L;
            }
        }

        float get(int r, long i) {
            return UnsafeApi.getFloat(address[r] + 4 * i);
        }

        void set(int r, long i, float v) {
            UnsafeApi.putFloat(address[r] + 4 * i, v);
        }

        float[] toArray(int r) {
            float[] a = new float[(int) count];
            for (int i = 0; i < a.length; i++) {
                a[i] = get(r, i);
            }
            return a;
        }

        void fromArray(int r, float[] a) {
            for (int i = 0; i < a.length; i++) {
                set(r, i, a[i]);
            }
        }

        @Override
        public void close() {
            for (long a : raw) {
                UnsafeApi.freeMemory(a);
            }
        }
    }
}
