package io.troupe.actors.cli;

import io.troupe.actors.engine.StageWorker;
import io.troupe.actors.trace.ChromeTraceWriter;
import io.troupe.actors.trace.Timeline;
import io.troupe.actors.trace.TimelineSvg;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;

/** A run's traced steps on disk: all of it as {@code trace.json}, compute and idle as {@code pipeline.svg}. */
final class RunTimeline {
    private RunTimeline() {
    }

    static void write(Timeline timeline, Path runDir) {
        try {
            ChromeTraceWriter.write(timeline, runDir.resolve("trace.json"));
            Timeline compute = timeline.only(c -> StageWorker.isCompute(c) || c.equals("idle"));
            TimelineSvg.write(new Timeline(compute.title(),
                compute.tracks().stream().filter(t -> !t.intervals().isEmpty()).toList()),
                runDir.resolve("pipeline.svg"));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
