package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.esotericsoftware.kryo.Kryo;
import com.esotericsoftware.kryo.io.Output;
import com.typesafe.config.ConfigFactory;
import io.troupe.actors.api.JobEvent;
import io.troupe.actors.api.JobHandle;
import io.troupe.actors.api.Troupe;
import io.troupe.models.data.Corpora;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.optim.AdamWConfig;
import io.troupe.models.train.TrainConfig;
import io.troupe.models.train.Trainer;
import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.transport.TransportNode;
import io.troupe.runtime.transport.TransportSettings;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.ActorRef;
import org.apache.pekko.actor.ActorSystem;
import org.apache.pekko.actor.ExtendedActorSystem;
import org.apache.pekko.serialization.JSerializer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A stranger on the network sends crafted control messages to a worker while a job runs: each is
 * refused with its reason and counted, and the job trains on with the single-device losses.
 * Real cluster nodes on 127.0.0.1; the stranger is a plain Pekko system that writes raw bytes under
 * Troupe's serializer id.
 */
@Timeout(180)
class HostileInputTest {
    private final List<AutoCloseable> open = new ArrayList<>();

    private static io.troupe.actors.api.TrainingJob job(int steps) {
        return io.troupe.actors.api.TrainingJob.builder().model("tiny").layout("1x2").schedule("1f1b").microbatches(2)
            .batchSize(4).steps(steps).lr(3e-3f, 3e-4f, 2).gradClip(1f).seed(5).stepTimeoutMs(30_000).validation(0, 1)
            .device("cpu").build();
    }

    /** Raw bytes sent as if they were a Troupe control message. */
    record Raw(byte[] bytes) {
    }

    /** The stranger's serializer: writes {@link Raw} bytes under Troupe's serializer id. */
    public static final class RawSerializer extends JSerializer {
        public RawSerializer(ExtendedActorSystem system) {
        }

        @Override
        public int identifier() {
            return TroupeKryoSerializer.IDENTIFIER;
        }

        @Override
        public boolean includeManifest() {
            return false;
        }

        @Override
        public byte[] toBinary(Object o) {
            return ((Raw) o).bytes();
        }

        @Override
        public Object fromBinaryJava(byte[] bytes, Class<?> manifest) {
            throw new UnsupportedOperationException("the stranger only sends");
        }
    }

    @AfterEach
    void closeAll() throws Exception {
        for (int i = open.size() - 1; i >= 0; i--) {
            open.get(i).close();
        }
    }

    private static int id(Class<?> c) {
        return 100 + KryoRegistrar.classes().indexOf(c) + 2;
    }

    /** Each entry: what it is, the bytes, the reason it must be refused for. */
    private static List<Object[]> hostileMessages() {
        List<Object[]> m = new ArrayList<>();
        m.add(new Object[] {"a 200 KiB message", new byte[200 * 1024], RefusedInputs.Reason.OVERSIZED});
        Output o = new Output(64, -1);
        o.writeVarInt(id(int[].class), true);
        o.writeVarInt((1 << 30) + 1, true);
        m.add(new Object[] {"an int[] declaring 2^30 elements", o.toBytes(), RefusedInputs.Reason.LENGTH_BOUND});
        o = new Output(64, -1);
        o.writeVarInt(id(ArrayList.class), true);
        o.writeVarInt(1_000_001, true);
        o.writeBytes(new byte[1000]);
        m.add(new Object[] {"a list declaring 10^6 elements", o.toBytes(), RefusedInputs.Reason.LENGTH_BOUND});
        o = new Output(64, -1);
        o.writeVarInt(id(String[].class), true);
        o.writeVarInt(2, true);
        TroupeKryoSerializer.newKryo(null).writeClass(o, String.class);
        o.writeVarIntFlag(true, 100_000_001, true);
        o.writeBytes(new byte[100]);
        m.add(new Object[] {"a string declaring 10^8 characters", o.toBytes(), RefusedInputs.Reason.LENGTH_BOUND});
        o = new Output(64, -1);
        for (int i = 0; i < 64; i++) {
            o.writeVarInt(id(ArrayList.class), true);
            o.writeVarInt(2, true);
        }
        m.add(new Object[] {"lists nested 64 deep", o.toBytes(), RefusedInputs.Reason.MALFORMED});
        o = new Output(64, -1);
        o.writeVarInt(4002, true);
        o.writeInt(7);
        m.add(new Object[] {"an unknown class id", o.toBytes(), RefusedInputs.Reason.MALFORMED});
        Kryo k = TroupeKryoSerializer.newKryo(null);
        o = new Output(256, -1);
        k.writeClassAndObject(o, new WorkerActor.WriteCheckpoint(new io.troupe.runtime.transport.JobIdentity(1, 1), 1,
            "/etc"));
        m.add(new Object[] {"a checkpoint root outside the allowed roots", o.toBytes(),
            RefusedInputs.Reason.PATH_OUTSIDE_ROOTS});
        o = new Output(256, -1);
        // enough ".." to climb from the working directory to / at any depth: a fixed four from a checkout deep
        // under the temporary directory (an allowed root) stays inside it, and is rightly allowed
        String escape = "runs/" + "../".repeat(Path.of("").toAbsolutePath().getNameCount() + 1) + "etc/passwd";
        k.writeClassAndObject(o, new JobRequest("tiny", "1x2", 1, "1f1b", 2, 4, 5, 3e-3f, 3e-4f, 2, 1f, 5, "",
            escape, 0, "", 1000, 0, 1, 1L << 20, "cpu", ""));
        m.add(new Object[] {"a data path escaping the working directory", o.toBytes(),
            RefusedInputs.Reason.PATH_OUTSIDE_ROOTS});
        return m;
    }
    @Test
    void shouldRefuseAndCountEveryHostileMessageWhileTheJobTrainsOnUntouched() throws Exception {
        TransportNode transport = TransportNode.launch(TransportSettings.defaults(), Throwable::printStackTrace);
        open.add(transport);
        NodeSettings base = NodeSettings.from(ConfigFactory.load()).withPort(0);
        TroupeNode first = TroupeNode.start(base.withRoles(List.of("worker", "coordinator"), 1).withSeeds(List.of()),
            ConfigFactory.load(), transport);
        open.add(first);
        TroupeNode target = TroupeNode.start(base.withRoles(List.of("worker"), 1).withSeeds(List.of(first.hostPort())),
            ConfigFactory.load(), transport);
        open.add(target);

        ActorSystem stranger = ActorSystem.create("stranger", ConfigFactory.parseString(String.join("\n",
            "pekko.actor.provider = remote",
            "pekko.remote.artery.canonical.hostname = 127.0.0.1",
            "pekko.remote.artery.canonical.port = 0",
            "pekko.loglevel = WARNING",
            "pekko.actor.allow-java-serialization = off",
            "pekko.actor.serializers.raw = \"" + RawSerializer.class.getName() + "\"",
            "pekko.actor.serialization-bindings { \"" + Raw.class.getName() + "\" = raw }"))
            .withFallback(ConfigFactory.load()));
        open.add(() -> {
            stranger.terminate();
            stranger.getWhenTerminated().toCompletableFuture().get(30, TimeUnit.SECONDS);
        });

        int steps = 30;
        CountDownLatch running = new CountDownLatch(1);
        JobHandle h = Troupe.using(first).submit(job(steps)).onEvent(e -> {
                if (e instanceof JobEvent.StepCompleted) {
                    running.countDown();
                }
            });
        assertTrue(running.await(120, TimeUnit.SECONDS), "the job did not start");

        ActorRef worker = ((ExtendedActorSystem) stranger).provider()
            .resolveActorRef("pekko://troupe@" + target.hostPort() + "/user/worker-0");
        List<Object[]> hostile = hostileMessages();
        for (Object[] m : hostile) {
            worker.tell(new Raw((byte[]) m[1]), ActorRef.noSender());
        }

        JobEvent end = h.await(Duration.ofSeconds(150));
        assertInstanceOf(JobEvent.Finished.class, end, "job ended with " + end);
        RefusedInputs refused = target.refusedInputs();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (refused.total() < hostile.size() && System.nanoTime() < deadline) {
            Thread.sleep(10); // a counter the node's threads raise: spinning would take one of the two cores
        }
        for (RefusedInputs.Reason r : RefusedInputs.Reason.values()) {
            long expected = hostile.stream().filter(m -> m[2] == r).count();
            System.out.printf("refused %s: %d (expected %d)%n", r, refused.count(r), expected);
            assertEquals(expected, refused.count(r), "refusals for " + r);
        }

        List<JobEvent.StepCompleted> done = h.steps();
        assertEquals(steps, done.size());
        TrainConfig tc = new TrainConfig(GptConfig.tiny(), 4, 1, steps, 3e-3f, 3e-4f, 2, 1.0f, 5, 0, 1, 0,
            AdamWConfig.defaults());
        try (CpuDevice dev = new CpuDevice(1); Trainer t = new Trainer(tc, dev, Corpora.builtIn())) {
            for (int i = 0; i < steps; i++) {
                double ref = t.trainStep().loss();
                assertEquals(ref, done.get(i).loss(), 1e-5 * ref, "step " + (i + 1));
            }
        }
    }

    @Test
    void shouldBoundEveryDeclaredLengthBeforeAllocating() {
        Kryo k = TroupeKryoSerializer.newKryo(null, 16);
        for (Object[] m : hostileMessages()) {
            if (m[2] == RefusedInputs.Reason.LENGTH_BOUND) {
                byte[] bytes = (byte[]) m[1];
                assertThrows(BoundedSerializers.LengthBoundException.class,
                    () -> k.readClassAndObject(new BoundedSerializers.BoundedInput(bytes, 16)), (String) m[0]);
            }
        }
        Output o = new Output(64, -1);
        k.writeClassAndObject(o, new ArrayList<>(List.of(1, 2, 3)));
        o.writeBytes(new byte[0]);
        assertEquals(List.of(1, 2, 3), k.readClassAndObject(new BoundedSerializers.BoundedInput(o.toBytes(), 16)));
        Output big = new Output(256, -1);
        k.writeClassAndObject(big, new int[17]);
        assertThrows(BoundedSerializers.LengthBoundException.class,
            () -> k.readClassAndObject(new BoundedSerializers.BoundedInput(big.toBytes(), 16)));
    }

    @Test
    void shouldRefusePathsOutsideTheRootsThroughDotsAndLinks(@org.junit.jupiter.api.io.TempDir Path tmp)
        throws Exception {
        Path root = java.nio.file.Files.createDirectory(tmp.resolve("root"));
        java.nio.file.Files.createSymbolicLink(root.resolve("escape"), Path.of("/etc"));
        AllowedRoots roots = new AllowedRoots(List.of(root.toString()));
        roots.check("data path", root.resolve("corpus.txt").toString());
        roots.check("checkpoint directory", root.resolve("a/b/../c").toString());
        roots.check("data path", "");
        for (String bad : List.of("/etc/passwd", root + "/../outside", root + "/escape/passwd")) {
            IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> roots.check("data path", bad));
            assertTrue(e.getMessage().contains(bad) && e.getMessage().contains("allowed-roots"), e.getMessage());
        }
    }
}
