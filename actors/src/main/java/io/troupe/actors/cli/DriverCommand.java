package io.troupe.actors.cli;

import com.typesafe.config.ConfigFactory;
import io.aeron.driver.MediaDriver;
import io.troupe.actors.cluster.TransportConfig;
import io.troupe.runtime.transport.TransportNode;
import io.troupe.runtime.transport.TransportSettings;
import java.io.PrintStream;
import java.util.Set;
import java.util.concurrent.CountDownLatch;

/**
 * {@code troupe driver --dir DIR}: the host's Aeron media driver, shared by every node process on
 * this machine (nodes started with {@code -Dtroupe.transport.aeron-dir=DIR
 * -Dtroupe.transport.external-driver=true}). Workers in different processes then exchange tensors
 * over IPC, and one driver thread serves them all instead of one per process. Runs until SIGTERM;
 * settings from {@code troupe.transport}.
 */
final class DriverCommand {
    private DriverCommand() {
    }

    static final String USAGE = """
        usage: troupe driver --dir DIR [--config FILE]
        Runs this host's media driver in DIR (e.g. /dev/shm/troupe-host) until stopped; node processes
        share it with -Dtroupe.transport.aeron-dir=DIR -Dtroupe.transport.external-driver=true.""";

    static int run(String[] args, PrintStream out, PrintStream err) {
        Options o = Options.parse(args, Set.of("dir", "config"), Set.of());
        if (!o.has("dir") || o.get("dir").isBlank()) {
            throw new UsageException("driver needs --dir DIR (the directory nodes will connect to)");
        }
        com.typesafe.config.Config cfg = ConfigFactory.load();
        if (o.has("config")) {
            cfg = ConfigFiles.parse(java.nio.file.Path.of(o.get("config"))).withFallback(cfg).resolve();
        }
        TransportSettings s;
        try {
            s = TransportConfig.from(cfg);
        } catch (IllegalArgumentException e) {
            throw new UsageException(e.getMessage());
        }
        MediaDriver driver;
        try {
            driver = TransportNode.launchDriver(s, o.get("dir"), t -> err.println("troupe driver: " + t));
        } catch (IllegalStateException e) {
            throw new UsageException(e.getMessage());
        }
        out.printf("troupe driver: up in %s, %s threading%n", driver.aeronDirectoryName(), s.threadingMode());
        out.flush();
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            driver.close();
            stopped.countDown();
        }, "troupe-driver-shutdown"));
        try {
            stopped.await();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        return 0;
    }
}
