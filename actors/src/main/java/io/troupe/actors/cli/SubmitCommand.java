package io.troupe.actors.cli;

import com.typesafe.config.ConfigFactory;
import io.troupe.actors.cluster.JobEvent;
import io.troupe.actors.cluster.JobHandle;
import io.troupe.actors.cluster.JobRequest;
import io.troupe.actors.cluster.NodeSettings;
import io.troupe.actors.cluster.TroupeNode;
import io.troupe.models.train.StepMetrics;
import java.io.PrintStream;
import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * {@code troupe submit --cluster HOST:PORT [train options]}: joins the cluster as a client (no workers,
 * no roles), submits the job to the coordinator, prints one progress line per committed step and
 * exits 0 when the job finished, 5 when it failed (the reason names the lost member and the last
 * committed step).
 */
final class SubmitCommand {
    private SubmitCommand() {
    }

    static int run(String[] args, PrintStream out, PrintStream err) {
        Set<String> known = new HashSet<>(TrainSettings.FLAG_KEYS.keySet());
        known.add("config");
        known.add("cluster");
        known.add("timeout-s");
        known.add("resume");
        Options o = Options.parse(args, known, Set.of());
        if (!o.has("cluster")) {
            throw new UsageException("submit needs --cluster HOST:PORT of a cluster node");
        }
        TrainSettings s = TrainSettings.from(o);
        long timeoutS = o.has("timeout-s") ? Long.parseLong(o.get("timeout-s")) : 3600;
        var t = s.train();

        NodeSettings ns = NodeSettings.from(ConfigFactory.load()).withPort(0)
            .withRoles(List.of(), 0).withSeeds(List.of(o.get("cluster").split(",")));
        java.nio.file.Path runDir = s.out().isEmpty()
            ? java.nio.file.Path.of("runs", java.time.LocalDateTime.now().format(
                java.time.format.DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss")) + "-" + t.model().name() + "-cluster")
            : java.nio.file.Path.of(s.out());
        // Checkpoints go to the run's checkpoints/ (a path every node can reach); with --resume the job
        // continues from, and keeps committing into, that checkpoint directory.
        java.nio.file.Path ckptRoot = runDir.resolve("checkpoints").toAbsolutePath();
        if (s.resume() != null) {
            java.nio.file.Path r = java.nio.file.Path.of(s.resume()).toAbsolutePath();
            ckptRoot = java.nio.file.Files.isDirectory(r.resolve("checkpoints")) ? r.resolve("checkpoints") : r;
        }
        JobRequest job = new JobRequest(t.model().name(), s.layout().dp() + "x" + s.layout().pp() + "x" + s.layout().tp(),
            s.layout().virtualStages(), s.schedule(), t.microBatches(), t.batchSize(), t.steps(), t.lr(), t.minLr(),
            t.warmupSteps(), t.gradClip(), t.seed(), s.partition(), s.data(), t.checkpointInterval(), ckptRoot.toString(),
            s.stepTimeoutMs());
        try (TroupeNode client = TroupeNode.start(ns, ConfigFactory.load(), null);
             io.troupe.models.train.RunOutputs outputs = new io.troupe.models.train.RunOutputs(runDir,
                 "Troupe cluster: " + t.model().name() + " GPT, layout " + job.layout() + ", " + job.schedule(), true)) {
            TrainCommand.Progress progress = new TrainCommand.Progress(out, t.steps(), 0);
            JobHandle h = client.submit(job).onEvent(e -> {
                if (e instanceof JobEvent.Started st) {
                    out.printf("troupe: job started, epoch %d, %d workers: %s%n", st.epoch(), st.worldSize(), st.assignment());
                } else if (e instanceof JobEvent.StepCompleted sc) {
                    StepMetrics m = new StepMetrics(sc.step(), sc.totalSteps(), sc.loss(), Double.NaN, sc.lr(), sc.gradNorm(),
                        sc.tokensPerSec(), sc.stepMs());
                    outputs.record(m, sc.bubble(), 0);
                    progress.print(m, sc.bubble());
                }
            });
            out.printf(Locale.ROOT, "troupe: submitted %s GPT, layout %s, schedule %s, %d steps to the cluster at %s%n",
                job.model(), job.layout(), job.schedule(), job.steps(), o.get("cluster"));
            JobEvent end = h.await(Duration.ofSeconds(timeoutS));
            outputs.writePlot();
            if (end instanceof JobEvent.Failed f) {
                err.printf("troupe: job failed: %s; last committed step %d (epoch %d)%n", f.reason(), f.lastCommittedStep(), f.epoch());
                return 5;
            }
            JobEvent.Finished fin = (JobEvent.Finished) end;
            out.printf(Locale.ROOT, "troupe: job finished after %d steps, final loss %.4f; metrics.csv and loss.svg in %s, "
                + "checkpoints in %s%n", fin.steps(), fin.finalLoss(), runDir, job.checkpointDir());
            return 0;
        } catch (java.util.concurrent.TimeoutException e) {
            err.println("troupe: job did not end within " + timeoutS + " s");
            return 5;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return 5;
        }
    }
}
