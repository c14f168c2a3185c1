package io.troupe.actors.cluster;

import com.typesafe.config.Config;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.lang.reflect.RecordComponent;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.zip.CRC32;
import org.apache.pekko.cluster.ConfigValidation;
import org.apache.pekko.cluster.Invalid;
import org.apache.pekko.cluster.JoinConfigCompatChecker;
import org.apache.pekko.cluster.Valid$;
import scala.jdk.javaapi.CollectionConverters;

/**
 * Refuses a joining node whose control-plane protocol differs from this cluster's: the members run
 * it on every join (Pekko's configuration compatibility check, enforced, so the refused node shuts
 * itself down) and the refusal names both versions. The version is {@link #PROTOCOL_VERSION} and a
 * fingerprint of the message encodings ({@link #SCHEMA}), so two builds whose messages differ never
 * join, even when nobody raised the number. A node without the version (another build, another
 * program) is refused too. Counted as {@link RefusedInputs.Reason#PROTOCOL_VERSION}.
 */
public final class ProtocolVersionCheck extends JoinConfigCompatChecker {
    /**
     * The version of the control-plane protocol (what the messages mean). The encodings themselves
     * are covered by {@link #SCHEMA}, computed from the classes, so a change nobody remembered to
     * count still refuses a node of the other build.
     */
    public static final int PROTOCOL_VERSION = 2;

    /**
     * A fingerprint of the encodings: every class {@link KryoRegistrar} registers, in id order, with its
     * record components, fields or enum constants and their generic types (CRC32 of that text, hex);
     * the JDK's classes by name only, so nodes on different JDK updates still join.
     */
    public static final String SCHEMA = fingerprint(KryoRegistrar.classes());

    /** What a node advertises under {@value #KEY}: the version and the schema fingerprint. */
    public static final String ADVERTISED = PROTOCOL_VERSION + "/" + SCHEMA;

    /** The fingerprint of {@code classes}' encodings, in their order (see {@link #SCHEMA}). */
    static String fingerprint(List<Class<?>> classes) {
        StringBuilder text = new StringBuilder();
        for (Class<?> c : classes) {
            text.append(c.getName()).append('{');
            if (c.isArray() || c.getName().startsWith("java.")) {
                text.append("jdk"); // the JDK's own encodings are Kryo's, whatever the JDK's fields
            } else if (c.isRecord()) {
                for (RecordComponent rc : c.getRecordComponents()) {
                    text.append(rc.getName()).append(':').append(rc.getGenericType().getTypeName()).append(';');
                }
            } else if (c.isEnum()) {
                for (Object constant : c.getEnumConstants()) {
                    text.append(((Enum<?>) constant).name()).append(';');
                }
            } else {
                List<Field> fields = new ArrayList<>();
                for (Field f : c.getDeclaredFields()) {
                    if (!Modifier.isStatic(f.getModifiers()) && !Modifier.isTransient(f.getModifiers())) {
                        fields.add(f);
                    }
                }
                fields.sort(Comparator.comparing(Field::getName));
                for (Field f : fields) {
                    text.append(f.getName()).append(':').append(f.getGenericType().getTypeName()).append(';');
                }
            }
            text.append('}');
        }
        CRC32 crc = new CRC32();
        crc.update(text.toString().getBytes(StandardCharsets.UTF_8));
        return String.format("%08x", crc.getValue());
    }

    static final String KEY = "troupe.cluster.protocol-version";
    static final String INSTANCE_KEY = "troupe.cluster.instance-id";

    @Override
    public scala.collection.immutable.Seq<String> requiredKeys() {
        return CollectionConverters.asScala(List.of(KEY)).toList();
    }

    @Override
    public ConfigValidation check(Config toCheck, Config actualConfig) {
        String problem = problem(toCheck, actualConfig);
        if (problem == null) {
            return Valid$.MODULE$;
        }
        if (actualConfig.hasPath(INSTANCE_KEY)) {
            RefusedInputs.forInstance(actualConfig.getString(INSTANCE_KEY))
                .refuse(RefusedInputs.Reason.PROTOCOL_VERSION, problem);
        }
        return new Invalid(CollectionConverters.asScala(List.of(problem)).toList());
    }

    /** Why a joining node's config is refused, or null when it speaks this cluster's protocol. */
    static String problem(Config joining, Config cluster) {
        String ours = cluster.hasPath(KEY) ? cluster.getValue(KEY).unwrapped().toString() : "none";
        if (!joining.hasPath(KEY)) {
            return "the joining node names no troupe protocol version; this cluster speaks version " + ours;
        }
        String theirs = joining.getValue(KEY).unwrapped().toString();
        return theirs.equals(ours) ? null
            : "troupe protocol version mismatch: the joining node speaks version " + theirs
                + ", this cluster speaks version " + ours;
    }
}
