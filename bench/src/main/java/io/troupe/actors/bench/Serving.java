package io.troupe.actors.bench;

import com.typesafe.config.ConfigFactory;
import io.troupe.actors.serve.InferenceServer;
import io.troupe.actors.serve.ServeSettings;
import io.troupe.actors.serve.StageLinks;
import io.troupe.models.infer.InferenceWeights;
import io.troupe.models.infer.Quantization;
import io.troupe.models.parallel.StagePartition;
import io.troupe.runtime.device.DeviceKind;
import io.troupe.runtime.device.Devices;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * How the serve bench starts its servers: every stage in this process ({@link InferenceServer#start(
 * InferenceWeights, ServeSettings, int)}), or, as {@code troupe serve --layout 1xN --stage-hosts ...} does,
 * stage 0 here (the embeddings and the first blocks, read from the checkpoint) and stages 1..N-1 on stage-host
 * processes ({@link StageHostProcesses}) with {@code troupe.serve.stage-link} and {@code troupe.transport} as
 * the config on the classpath sets them. A stage host serves one server at a time; the bench's servers run
 * one after another, and each, closed, unloads its stages. {@link #close} stops the hosts.
 */
final class Serving implements AutoCloseable {
    private final InferenceWeights whole;
    private final InferenceWeights front;
    private final int stages;
    private final StageHostProcesses hosts;
    private final StageLinks links;
    /** With {@code --device}: the device each server opens, and the checkpoint's float32 parameters; else null. */
    private final DeviceKind device;
    private final Map<String, float[]> params;

    private Serving(InferenceWeights whole, InferenceWeights front, int stages, StageHostProcesses hosts,
                    StageLinks links, DeviceKind device, Map<String, float[]> params) {
        this.whole = whole;
        this.front = front;
        this.stages = stages;
        this.hosts = hosts;
        this.links = links;
        this.device = device;
        this.params = params;
    }

    /**
     * Servers of the whole model on one {@code device} ({@code troupe serve --device}: {@link
     * InferenceServer#startOnDevice}), each opening a device of its own, which it closes; the parameters are
     * read from {@code checkpoint} once.
     */
    static Serving onDevice(InferenceWeights whole, Path checkpoint, DeviceKind device) {
        return new Serving(whole, null, 1, null, null, device, InferenceWeights.loadParameters(checkpoint));
    }

    /**
     * Servers of {@code whole} (read from {@code checkpoint} with {@code q}) in this process when
     * {@code stageHosts} is 0; else {@code stageHosts} stage-host processes are started for a 1x{@code stages}
     * layout, and this process holds stage 0 only.
     */
    static Serving of(InferenceWeights whole, Path checkpoint, Quantization q, int stageHosts, int stages)
        throws Exception {
        if (stageHosts == 0) {
            return new Serving(whole, null, stages, null, null, null, null);
        }
        InferenceWeights front = InferenceWeights.load(checkpoint, q, 0,
            StagePartition.balanced(whole.config(), stages).endBlock(0));
        List<String> jvm = new ArrayList<>();
        if (io.troupe.models.infer.Fp32Linear.usesVectorApi()) {
            jvm.add("--add-modules");           // the hosts' linears take the same kernel as this process's
            jvm.add("jdk.incubator.vector");
        }
        StageHostProcesses hosts = StageHostProcesses.start(checkpoint, stageHosts, jvm);
        try {
            StageLinks links = StageLinks.from(ConfigFactory.load(), hosts.hostPorts());
            System.out.printf("stage hosts: %d troupe serve-stage processes at %s; stages 1..%d on the first %d%n",
                stageHosts, String.join(", ", links.hosts()), stages - 1, stages - 1);
            return new Serving(whole, front, stages, hosts, links, null, null);
        } catch (RuntimeException e) {
            hosts.close();
            throw e;
        }
    }

    /**
     * A server of {@code s} on {@code pipelineStages} stages: on the stage hosts when there are any (then
     * {@code pipelineStages} must be the layout they were started for), else in this process.
     */
    InferenceServer start(ServeSettings s, int pipelineStages) {
        if (device != null) {
            if (pipelineStages != 1) {
                throw new IllegalArgumentException("--device serves the whole model on one stage: stages="
                    + pipelineStages);
            }
            return InferenceServer.startOnDevice(whole.config(), params,
                Devices.open(device, Math.max(1, Runtime.getRuntime().availableProcessors())), s);
        }
        if (hosts == null) {
            return InferenceServer.start(whole, s, pipelineStages);
        }
        if (pipelineStages != stages) {
            throw new IllegalArgumentException("the stage hosts serve a 1x" + stages + " layout: stages="
                + pipelineStages);
        }
        try {
            return InferenceServer.start(front, s, stages, links);
        } catch (RuntimeException e) {
            throw new IllegalStateException(e.getMessage() + "\n" + hosts.output(), e);
        }
    }

    /** The CPU time the stage-host processes have used so far, ns; -1 without hosts or where unknown. */
    long hostCpuNs() {
        return hosts == null ? -1 : hosts.cpuNs();
    }

    @Override
    public void close() {
        if (hosts != null) {
            hosts.close();
        }
    }
}
