package io.troupe.actors.cli;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import io.troupe.actors.api.JobEvent;
import io.troupe.actors.api.JobHandle;
import io.troupe.actors.api.Troupe;
import io.troupe.actors.cluster.JobRequest;
import io.troupe.actors.cluster.NodeSettings;
import io.troupe.actors.cluster.TroupeNode;
import io.troupe.models.data.DataFingerprint;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * {@code troupe submit --cluster HOST:PORT [--hostname H] [--port P] [--config FILE] [train options]}:
 * talks to the cluster as a client that does not join it (so its loss fails at most its own watch),
 * advertising {@code --hostname} (or {@code troupe.cluster.hostname} of {@code --config}), submits
 * the job to the coordinator, prints one progress line per committed step and
 * exits 0 when the job finished, 5 when it failed (the reason names the lost member and the last
 * committed step) or when no node listed answered within {@code --connect-timeout-s} (nothing sent,
 * the run directory untouched). Ctrl-C or SIGTERM stops the job on the cluster as {@code troupe train}'s
 * embedded cluster stops its own ({@link StopSignal}, {@link ClusterJobs#follow}): the stop line says how to
 * {@code --resume}, the exit code is 130 or 143. {@code --detach} exits 0 once the job has started, printing its
 * id, and leaves it running with nobody following it.
 */
final class SubmitCommand {
    private SubmitCommand() {
    }

    static final String USAGE = """
        usage: troupe submit --cluster HOST:PORT[,HOST:PORT...] [--hostname H] [--port P] [--config FILE]
                             [--connect-timeout-s S] [--timeout-s S] [--detach] [train options]
        Talks to the cluster as a client that does not join it (its loss fails only its own watch):
        sends the job to the job gateway of the first node listed that answers (several: each tried in
        turn for 5 s, round after round; one: waited for) and follows it at --hostname (an address the
        nodes can reach; default troupe.cluster.hostname of --config, else 127.0.0.1) on --port
        (default: a free port). When no node listed answers within --connect-timeout-s (default 60), it
        exits 5 with one line naming them, nothing sent and the run directory untouched. --config also
        gives the client's TLS settings. One line per committed step,
        metrics.csv, loss.svg and the traced steps (--trace-steps A:B, default the last) in the run
        directory (--out DIR). Exits 0 when the
        job finished, 5 when it failed or did not end within --timeout-s (default 3600). Ctrl-C or
        SIGTERM stops the job on the cluster, says how to continue it (--resume DIR) and exits 130 or 143
        (the stop has its own bound, the step timeout, at least 60 s, whatever is left of --timeout-s).
        While the job runs, the client sends it to its seeds again every 5 s: should every node be lost (the
        cluster stopped and started again, on a new build too), a cluster started again there carries the job on
        from its record and last disk checkpoint, and this client follows it on.
        --detach: exits 0 once the job has started, printing its id and run directory; the job runs on
        (its checkpoints go to the run directory) and nothing stops it from here. The train
        options are those of 'troupe train --help'; --data names a file on every node (when this client holds
        it too, the nodes' copies must hold its bytes, else the job fails before its first step). The cluster
        records the data its ranks read as data.json beside the job record in the checkpoint directory; --resume
        DIR fails before its first step when they read other bytes than that record, naming both.""";

    /** What {@code submit} takes with no value: the train switches and {@code --detach}. */
    private static final Set<String> SWITCHES = switches();

    /**
     * {@code args} parsed against submit's options, {@code --cluster} present, and the job's settings they give,
     * checked (nothing is contacted).
     *
     * @throws UsageException naming an unknown option or a bad value
     */
    static Options options(String[] args) {
        Set<String> known = new HashSet<>(TrainSettings.FLAG_KEYS.keySet());
        known.add("config");
        known.add("cluster");
        known.add("timeout-s");
        known.add("connect-timeout-s");
        known.add("hostname");
        known.add("port");
        known.add("resume");
        known.add("trace-steps");
        Options o = Options.parse(args, known, SWITCHES);
        if (!o.has("cluster")) {
            throw new UsageException("submit needs --cluster HOST:PORT of a cluster node");
        }
        return o;
    }

    static int run(String[] args, PrintStream out, PrintStream err) {
        Options o = options(args);
        boolean detach = o.has("detach");
        TrainSettings s = TrainSettings.from(o);
        long timeoutS = o.has("timeout-s") ? Options.positiveLong("timeout-s", o.get("timeout-s")) : 3600;
        long connectS = o.has("connect-timeout-s") ? Options.positiveLong("connect-timeout-s",
            o.get("connect-timeout-s")) : TroupeNode.SEEDS_DEADLINE.toSeconds();
        var t = s.train();

        Config cfg = clientConfig(o);
        NodeSettings ns;
        try {
            ns = NodeSettings.from(cfg).withRoles(List.of(), 0).withSeeds(List.of(o.get("cluster").split(",")));
        } catch (ConfigException | IllegalArgumentException e) {
            throw new UsageException(e.getMessage());
        }
        Path runDir = s.out().isEmpty()
            ? Path.of("runs", java.time.LocalDateTime.now().format(
                java.time.format.DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss")) + "-" + t.model().name() + "-cluster")
            : Path.of(s.out());
        // the data is on the nodes, not necessarily here: the workers compare theirs with each other, and with this
        // client's copy when it holds one at the same path
        JobRequest job = ClusterJobs.request(s, ClusterJobs.checkpointDir(s, runDir),
            TrainCommand.traceWindow(o, t.steps()), localCopy(s.data(), err));
        // a detached job is nobody's to stop: Ctrl-C then ends only this client
        try (StopSignal stop = detach ? null : StopSignal.install("troupe-submit", ClusterJobs.stopWaitMs(s));
             TroupeNode client = TroupeNode.start(ns, cfg, null)) {
            // before the run directory is touched: a wrong address costs --connect-timeout-s, not --timeout-s
            if (!client.connect(Duration.ofSeconds(connectS))) {
                err.printf(Locale.ROOT, "troupe: no cluster node answered at %s within %d s (--connect-timeout-s);"
                    + " nothing was submitted%n", client.seeds(), connectS);
                return 5;
            }
            if (stop != null && stop.requested()) {
                err.printf("troupe: stopped (%s) before the job was submitted%n", stop.reason());
                return stop.signalStatus();
            }
            if (detach) {
                out.printf(Locale.ROOT, "troupe: submitting %s GPT, layout %s, schedule %s, %d steps to the cluster"
                    + " at %s, detached%n", job.model(), job.layout(), job.schedule(), job.steps(), o.get("cluster"));
                return detached(Troupe.using(client).submit(job), ClusterJobs.resumeDir(Path.of(job.checkpointDir())),
                    Duration.ofSeconds(timeoutS), out, err);
            }
            try (io.troupe.models.train.RunOutputs outputs = new io.troupe.models.train.RunOutputs(runDir,
                "Troupe cluster: " + t.model().name() + " GPT, layout " + job.layout() + ", " + job.schedule(), true,
                s.resume() != null)) {
                out.printf(Locale.ROOT, "troupe: submitting %s GPT, layout %s, schedule %s,"
                    + " %d steps to the cluster at %s%n",
                    job.model(), job.layout(), job.schedule(), job.steps(), o.get("cluster"));
                String resumeWith = ClusterJobs.Stop.resumeCommand();
                return ClusterJobs.follow(Troupe.using(client).submit(job), outputs, t.steps(),
                    Duration.ofSeconds(timeoutS), ClusterJobs.Stop.of(stop, resumeWith, job), out, err);
            }
        }
    }

    /**
     * {@code --detach}: waits (at most {@code timeout}) for the job to start, then says its id and where its
     * checkpoints go and returns 0, leaving it to run; 5 when it failed first (refused, a job already running, too
     * few workers) or did not start in time.
     */
    private static int detached(JobHandle h, Path runDir, Duration timeout, PrintStream out, PrintStream err) {
        CompletableFuture<JobEvent> first = new CompletableFuture<>();
        h.onEvent(e -> {
            if (e instanceof JobEvent.Started || e instanceof JobEvent.Failed) {
                first.complete(e);
            }
        });
        JobEvent e;
        try {
            e = first.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
        } catch (TimeoutException | ExecutionException x) {
            err.println("troupe: job did not start within " + timeout.toSeconds() + " s");
            return 5;
        } catch (InterruptedException x) {
            Thread.currentThread().interrupt();
            return 5;
        }
        if (e instanceof JobEvent.Failed f) {
            err.printf("troupe: job failed: %s%n", f.reason());
            return 5;
        }
        JobEvent.Started st = (JobEvent.Started) e;
        out.printf("troupe: job %s started on %d workers and runs on, detached; run directory %s (its checkpoints"
            + " and job record)%n", st.jobId(), st.worldSize(), runDir);
        out.flush();
        return 0;
    }

    /**
     * The fingerprint of this client's copy of the job's data ({@code dataPath} as the nodes read it, a relative path
     * taken against this process's working directory), which the ranks' copies must then match; null when there is
     * none to compare: the built-in corpus, no file or directory at the path here, or one that cannot be read (said
     * on {@code err}: the ranks are then compared only with each other).
     */
    static DataFingerprint localCopy(String dataPath, PrintStream err) {
        if (dataPath.isEmpty() || !Files.exists(Path.of(dataPath))) {
            return null;
        }
        try {
            return DataFingerprint.of(Path.of(dataPath));
        } catch (UncheckedIOException | IllegalArgumentException e) {
            err.printf("troupe: the data at %s here is not compared with the nodes' copies: %s%n", dataPath,
                e.getMessage());
            return null;
        }
    }

    private static Set<String> switches() {
        Set<String> s = new HashSet<>(TrainSettings.SWITCHES);
        s.add("detach");
        return Set.copyOf(s);
    }

    /**
     * The client's settings: reference.conf, then --config (its troupe.cluster section: hostname,
     * TLS, ...), then --hostname and --port (default 0: any free port).
     */
    static Config clientConfig(Options o) {
        Config cfg = ConfigFactory.load();
        if (o.has("config")) {
            cfg = ConfigFiles.parse(Path.of(o.get("config"))).withFallback(cfg).resolve();
        }
        List<String> overrides = new java.util.ArrayList<>();
        overrides.add("troupe.cluster.port = " + (o.has("port") ? Options.positiveLong("port", o.get("port")) : 0));
        if (o.has("hostname")) {
            overrides.add("troupe.cluster.hostname = \"" + o.get("hostname") + "\"");
        }
        return ConfigFactory.parseString(String.join("\n", overrides)).withFallback(cfg).resolve();
    }
}
