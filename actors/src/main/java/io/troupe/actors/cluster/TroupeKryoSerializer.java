package io.troupe.actors.cluster;

import com.esotericsoftware.kryo.Kryo;
import com.esotericsoftware.kryo.KryoException;
import com.esotericsoftware.kryo.Serializer;
import com.esotericsoftware.kryo.io.Input;
import com.esotericsoftware.kryo.io.Output;
import org.apache.pekko.actor.ExtendedActorSystem;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorRefResolver;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.apache.pekko.serialization.JSerializer;

/**
 * Pekko serializer for {@link CrossNodeMessage}s: Kryo with registration required, every class
 * from {@link KryoRegistrar}, typed {@link ActorRef}s written as their resolvable path. A class that
 * is not registered is refused on both sides with an {@link IllegalArgumentException} naming it;
 * Pekko logs it and drops the message (nothing unknown is ever instantiated).
 *
 * <p>Threading: Kryo is not thread-safe, so each thread gets its own instance.
 */
public final class TroupeKryoSerializer extends JSerializer {
    /** Pekko serializer id; unique among the system's serializers. */
    public static final int IDENTIFIER = 744_101;

    private final ThreadLocal<Kryo> kryo;

    public TroupeKryoSerializer(ExtendedActorSystem system) {
        ActorRefResolver resolver = ActorRefResolver.get(Adapter.toTyped(system));
        this.kryo = ThreadLocal.withInitial(() -> newKryo(resolver));
    }

    static Kryo newKryo(ActorRefResolver resolver) {
        Kryo k = new Kryo();
        KryoRegistrar.registerAll(k);
        if (resolver != null) {
            ActorRefSerializer refs = new ActorRefSerializer(resolver);
            k.addDefaultSerializer(ActorRef.class, refs);
            // The typed ref implementation class Pekko hands out; registered last with a fixed id.
            k.register(org.apache.pekko.actor.typed.internal.adapter.ActorRefAdapter.class, refs, 99);
        }
        return k;
    }

    @Override
    public int identifier() {
        return IDENTIFIER;
    }

    @Override
    public boolean includeManifest() {
        return false;
    }

    @Override
    public byte[] toBinary(Object o) {
        try (Output out = new Output(256, -1)) {
            kryo.get().writeClassAndObject(out, o);
            return out.toBytes();
        } catch (IllegalArgumentException | KryoException e) {
            throw new IllegalArgumentException("cannot serialize " + o.getClass().getName()
                + " for another node (every CrossNodeMessage class must be in KryoRegistrar): " + e.getMessage(), e);
        }
    }

    @Override
    public Object fromBinaryJava(byte[] bytes, Class<?> manifest) {
        try (Input in = new Input(bytes)) {
            return kryo.get().readClassAndObject(in);
        } catch (KryoException | IllegalArgumentException e) {
            throw new IllegalArgumentException("refused a message from another node: " + e.getMessage(), e);
        }
    }

    /** Writes a typed ActorRef as its serialization string and resolves it on read. */
    private static final class ActorRefSerializer extends Serializer<ActorRef<?>> {
        private final ActorRefResolver resolver;

        ActorRefSerializer(ActorRefResolver resolver) {
            this.resolver = resolver;
        }

        @Override
        public void write(Kryo k, Output output, ActorRef<?> ref) {
            output.writeString(resolver.toSerializationFormat(ref));
        }

        @Override
        public ActorRef<?> read(Kryo k, Input input, Class<? extends ActorRef<?>> type) {
            return resolver.resolveActorRef(input.readString());
        }
    }
}
