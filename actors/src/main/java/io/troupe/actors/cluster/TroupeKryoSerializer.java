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
 * <p>Nothing from the wire is trusted ({@link ClusterSecurity}): a message over
 * {@code troupe.cluster.max-message-bytes} is refused before it is read, every declared array, list
 * and string length is checked before anything is allocated ({@link BoundedSerializers}), nesting is
 * limited, and file paths in a message must resolve under {@code troupe.cluster.allowed-roots}. Each
 * refusal throws (Pekko drops the message, the sender's association and any running job go on) and
 * is counted in the node's {@link RefusedInputs} by reason.
 *
 * <p>Threading: Kryo is not thread-safe, so each thread gets its own instance.
 */
public final class TroupeKryoSerializer extends JSerializer {
    /** Pekko serializer id; unique among the system's serializers. */
    public static final int IDENTIFIER = 744_101;

    /** Deepest nesting of objects a message may have. */
    static final int MAX_DEPTH = 32;

    private final ThreadLocal<Kryo> kryo;
    private final ClusterSecurity security;
    private final RefusedInputs refused;

    public TroupeKryoSerializer(ExtendedActorSystem system) {
        ActorRefResolver resolver = ActorRefResolver.get(Adapter.toTyped(system));
        com.typesafe.config.Config config = system.settings().config();
        this.security = ClusterSecurity.from(config);
        this.refused = config.hasPath(ProtocolVersionCheck.INSTANCE_KEY)
            ? RefusedInputs.forInstance(config.getString(ProtocolVersionCheck.INSTANCE_KEY)) : new RefusedInputs();
        int maxLength = security.maxCollectionLength();
        this.kryo = ThreadLocal.withInitial(() -> newKryo(resolver, maxLength));
    }

    static Kryo newKryo(ActorRefResolver resolver) {
        return newKryo(resolver, Integer.MAX_VALUE);
    }

    static Kryo newKryo(ActorRefResolver resolver, int maxCollectionLength) {
        Kryo k = new Kryo();
        KryoRegistrar.registerAll(k);
        BoundedSerializers.install(k, maxCollectionLength);
        k.setMaxDepth(MAX_DEPTH);
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
        byte[] bytes;
        try (Output out = new Output(256, -1)) {
            kryo.get().writeClassAndObject(out, o);
            bytes = out.toBytes();
        } catch (IllegalArgumentException | KryoException e) {
            throw new IllegalArgumentException("cannot serialize " + o.getClass().getName()
                + " for another node (every CrossNodeMessage class must be in KryoRegistrar): " + e.getMessage(), e);
        }
        if (bytes.length > security.maxMessageBytes()) {
            throw new IllegalArgumentException("cannot send a " + o.getClass().getName() + " of " + bytes.length
                + " bytes: over troupe.cluster.max-message-bytes=" + security.maxMessageBytes());
        }
        return bytes;
    }

    @Override
    public Object fromBinaryJava(byte[] bytes, Class<?> manifest) {
        if (bytes.length > security.maxMessageBytes()) {
            throw refuse(RefusedInputs.Reason.OVERSIZED, "a message of " + bytes.length
                + " bytes, over troupe.cluster.max-message-bytes=" + security.maxMessageBytes(), null);
        }
        Object message;
        try (Input in = new BoundedSerializers.BoundedInput(bytes, security.maxCollectionLength())) {
            message = kryo.get().readClassAndObject(in);
        } catch (BoundedSerializers.LengthBoundException e) {
            throw refuse(RefusedInputs.Reason.LENGTH_BOUND, e.getMessage(), e);
        } catch (RuntimeException e) {
            throw refuse(RefusedInputs.Reason.MALFORMED, e.getMessage(), e);
        }
        try {
            NetworkPaths.check(message, security.allowedRoots());
        } catch (IllegalArgumentException e) {
            throw refuse(RefusedInputs.Reason.PATH_OUTSIDE_ROOTS, e.getMessage(), e);
        }
        return message;
    }

    private IllegalArgumentException refuse(RefusedInputs.Reason reason, String detail, Exception cause) {
        refused.refuse(reason, detail);
        return new IllegalArgumentException("refused a message from another node (" + reason + "): " + detail, cause);
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
