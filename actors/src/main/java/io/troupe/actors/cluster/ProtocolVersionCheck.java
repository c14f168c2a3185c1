package io.troupe.actors.cluster;

import com.typesafe.config.Config;
import java.util.List;
import org.apache.pekko.cluster.ConfigValidation;
import org.apache.pekko.cluster.Invalid;
import org.apache.pekko.cluster.JoinConfigCompatChecker;
import org.apache.pekko.cluster.Valid$;
import scala.jdk.javaapi.CollectionConverters;

/**
 * Refuses a joining node whose control-plane protocol differs from this cluster's: the members run
 * it on every join (Pekko's configuration compatibility check, enforced, so the refused node shuts
 * itself down) and the refusal names both versions. A node without the version (another build,
 * another program) is refused too. Counted as {@link RefusedInputs.Reason#PROTOCOL_VERSION}.
 */
public final class ProtocolVersionCheck extends JoinConfigCompatChecker {
    /**
     * The version of the control-plane protocol (message classes, their Kryo ids and encodings).
     * Raise it whenever {@link KryoRegistrar} or an encoding changes.
     */
    public static final int PROTOCOL_VERSION = 1;

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
