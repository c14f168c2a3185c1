package io.troupe.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.actors.api.JobEvent;
import io.troupe.actors.api.TrainingJob;
import io.troupe.actors.api.Troupe;
import io.troupe.actors.serve.InferenceServer;
import io.troupe.actors.serve.ServeSettings;
import io.troupe.models.infer.InferenceWeights;
import io.troupe.models.infer.Quantization;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** docs/serving.md's Java example, compiled and run: train, then serve the checkpoint the job committed. */
class EmbeddedServingExampleTest {
    @TempDir
    Path tmp;

    @Test
    @Timeout(120)
    void servesTheCheckpointATrainingJobCommitted() throws Exception {
        String runDir = tmp.resolve("run").toString();
        JobEvent end;
        try (Troupe troupe = Troupe.local(1)) {
            end = troupe.submit(TrainingJob.builder().model("tiny").layout("1x1").batchSize(4).steps(4)
                .checkpoints(4, runDir).build()).await(Duration.ofMinutes(2));
        }
        JobEvent.Finished finished = assertInstanceOf(JobEvent.Finished.class, end);
        // serving example begins
        InferenceWeights weights = InferenceWeights.load(Path.of(finished.checkpoint()), Quantization.INT8);
        ServeSettings settings = ServeSettings.defaults().toBuilder()
            .port(0)                      // a free port; server.port() says which
            .maxBatch(8)
            .isolateStepCore(false)       // leave the OS to place the step thread
            .build();
        try (InferenceServer server = InferenceServer.start(weights, settings)) {
            HttpResponse<String> r = HttpClient.newHttpClient().send(HttpRequest
                    .newBuilder(URI.create("http://127.0.0.1:" + server.port() + "/v1/completions"))
                    .timeout(Duration.ofSeconds(30)).header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(
                        "{\"prompt\": \"ROMEO:\", \"max_tokens\": 8, \"temperature\": 0}"))
                    .build(),
                HttpResponse.BodyHandlers.ofString());
            System.out.println(r.body());
            server.drain(Duration.ofSeconds(10)).get();   // what a SIGTERM does: finish what it holds, then stop
            // serving example ends
            assertEquals(200, r.statusCode(), r.body());
            assertTrue(r.body().contains("\"completion_tokens\":8"), r.body());
            assertTrue(r.body().contains("\"finish_reason\":\"length\""), r.body());
        }
    }
}
