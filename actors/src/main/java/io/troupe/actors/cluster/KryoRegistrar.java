package io.troupe.actors.cluster;

import com.esotericsoftware.kryo.Kryo;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * The one list of classes that may cross nodes, with stable Kryo ids. Append only: an id, once
 * shipped, keeps its class forever (nodes of different builds must agree).
 */
public final class KryoRegistrar {
    private static final int FIRST_ID = 100;
    private static final List<Class<?>> CLASSES = new ArrayList<>();

    static {
        // Plain values used inside messages.
        add(int[].class);
        add(long[].class);
        add(double[].class);
        add(String[].class);
        add(ArrayList.class);
        add(java.util.Collections.unmodifiableList(new ArrayList<>()).getClass());
        add(List.of().getClass());
        add(List.of(1).getClass());
        add(List.of(1, 2, 3).getClass());
        // Control-plane messages.
        for (Class<?> c : ClusterProtocol.MESSAGES) {
            add(c);
        }
        // A server's pipeline stages on other hosts.
        for (Class<?> c : io.troupe.actors.serve.StageProtocol.MESSAGES) {
            add(c);
        }
    }

    private KryoRegistrar() {
    }

    private static void add(Class<?> c) {
        if (!CLASSES.contains(c)) {
            CLASSES.add(c);
        }
    }

    /** The registered classes in id order (id = {@value #FIRST_ID} + index). */
    public static List<Class<?>> classes() {
        return Collections.unmodifiableList(CLASSES);
    }

    /** Registers every class on a Kryo instance that requires registration. */
    static void registerAll(Kryo kryo) {
        kryo.setRegistrationRequired(true);
        for (int i = 0; i < CLASSES.size(); i++) {
            kryo.register(CLASSES.get(i), FIRST_ID + i);
        }
    }
}
