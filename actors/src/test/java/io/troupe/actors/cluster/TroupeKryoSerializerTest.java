package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.esotericsoftware.kryo.Kryo;
import com.esotericsoftware.kryo.io.Input;
import com.esotericsoftware.kryo.io.Output;
import io.troupe.actors.api.JobEvent;
import io.troupe.actors.api.TrainingJob;
import io.troupe.models.data.DataFingerprint;
import java.util.List;
import org.junit.jupiter.api.Test;

class TroupeKryoSerializerTest {

    /** A message class that was never registered. */
    record Unregistered(int x) implements CrossNodeMessage {
    }

    @Test
    void shouldRoundTripRegisteredMessages() {
        Kryo k = TroupeKryoSerializer.newKryo(null);
        JobRequest job = TrainingJob.builder().model("tiny").layout("1x2").microbatches(2).batchSize(4).steps(5)
            .stepTimeoutMs(1000).build().request();
        String fingerprint = new DataFingerprint("/data/a.txt", 1 << 20, "sha256", "0123456789abcdef".repeat(4))
            .token();
        JobRequest withData = TrainingJob.builder().model("tiny").layout("1x2").microbatches(2).batchSize(4).steps(5)
            .data("/data/a.txt").expectedData(DataFingerprint.fromToken("/data/a.txt", fingerprint)).build()
            .request();
        assertEquals(fingerprint, withData.dataFingerprint());
        for (Object msg : List.of(job, withData, new JobEvent.Failed("why", 3, 2),
            new CoordinatorActor.Ready(1, new io.troupe.runtime.transport.JobIdentity(0x5eed, 2), 4096),
            new CoordinatorActor.Ready(1, new io.troupe.runtime.transport.JobIdentity(0x5eed, 2), 4096, fingerprint),
            new WorkerActor.RunSteps(new io.troupe.runtime.transport.JobIdentity(-7, 4), 7, 9, 8, 8),
            new CoordinatorActor.WorkerFailed(3, new io.troupe.runtime.transport.JobIdentity(11, 0), -1, "disk full"),
            new CoordinatorActor.WorkerFailed(3, new io.troupe.runtime.transport.JobIdentity(11, 0), -1,
                "data: no such file or directory: /data/a.txt", true),
            new WorkerDescription("pekko://troupe@127.0.0.1:1", "n:h:1:2", "n:h:1:3", "cpu", 0),
            new WorkerDescription("pekko://troupe@127.0.0.1:1", "n:h:1:2", "n:h:1:3", "cpu", 1, "n:h:1:4", 20,
                3L << 30),
            new JobEvent.Started("0000002a", 2, 2, "rank 0 -> a, rank 1 -> b", "off: node b needs 9 bytes"),
            new JobEvent.Accepted("0000002a", 2, true),
            new WorkerActor.DropSnapshots(new io.troupe.runtime.transport.JobIdentity(5, 3), "node b needs 9 bytes"))) {
            Output out = new Output(256, -1);
            k.writeClassAndObject(out, msg);
            Object back = k.readClassAndObject(new Input(out.toBytes()));
            assertEquals(msg, back);
        }
    }

    @Test
    void shouldRefuseAnUnregisteredClassNamingIt() {
        Kryo k = TroupeKryoSerializer.newKryo(null);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> k.writeClassAndObject(new Output(64, -1), new Unregistered(1)));
        assertTrue(e.getMessage().contains("Unregistered"), e.getMessage());
    }

    @Test
    void shouldRefuseBytesNamingAnUnknownClassId() {
        Kryo k = TroupeKryoSerializer.newKryo(null);
        Output out = new Output(16, -1);
        out.writeVarInt(4000 + 2, true);
        out.writeInt(7);
        assertThrows(RuntimeException.class, () -> k.readClassAndObject(new Input(out.toBytes())));
    }

    @Test
    void shouldListEveryCrossNodeMessageOfTheProtocol() {
        for (Class<?> c : ClusterProtocol.MESSAGES) {
            assertTrue(KryoRegistrar.classes().contains(c), c.getName());
        }
    }
}
