package io.troupe.actors.cluster;

import com.esotericsoftware.kryo.Kryo;
import com.esotericsoftware.kryo.KryoException;
import com.esotericsoftware.kryo.Serializer;
import com.esotericsoftware.kryo.io.Input;
import com.esotericsoftware.kryo.io.Output;
import java.lang.reflect.Array;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * Kryo serializers for the arrays and lists that control messages carry, which check every declared
 * length before they allocate: a length above {@code troupe.cluster.max-collection-length}, or above
 * the bytes left in the message (every element takes at least one), is refused with a
 * {@link LengthBoundException}. Strings are bounded the same way by {@link BoundedInput}.
 *
 * <p>Encoding: varint {@code length + 1} (0 = null), then the elements (primitive arrays as fixed
 * little-endian values, others each with its class).
 */
final class BoundedSerializers {
    private BoundedSerializers() {
    }

    /** A declared length past its bound. */
    static final class LengthBoundException extends KryoException {
        LengthBoundException(String message) {
            super(message);
        }
    }

    /** Replaces the serializers of every registered array and list class with bounded ones. */
    static void install(Kryo kryo, int maxLength) {
        for (Class<?> c : KryoRegistrar.classes()) {
            Serializer<?> s = forClass(c, maxLength);
            if (s != null) {
                kryo.getRegistration(c).setSerializer(s);
            }
        }
    }

    private static Serializer<?> forClass(Class<?> c, int maxLength) {
        if (c == int[].class || c == long[].class || c == double[].class) {
            return new PrimitiveArraySerializer(c.getComponentType(), maxLength);
        }
        if (c.isArray()) {
            return new ObjectArraySerializer(c.getComponentType(), maxLength);
        }
        if (List.class.isAssignableFrom(c)) {
            return new ListSerializer(c, maxLength);
        }
        return null;
    }

    /** Reads a declared length and checks it against the bound and the bytes left. */
    static int readLength(Input in, int maxLength, String what) {
        int declared = in.readVarInt(true);
        if (declared == 0) {
            return -1;
        }
        int length = declared - 1;
        check(in, length, maxLength, what);
        return length;
    }

    static void check(Input in, long length, int maxLength, String what) {
        long left = (long) in.limit() - in.position();
        if (length < 0 || length > maxLength || length > left) {
            throw new LengthBoundException(what + " declares " + length + " elements; at most "
                + Math.min(maxLength, left) + " allowed (troupe.cluster.max-collection-length=" + maxLength
                + ", " + left + " bytes left in the message)");
        }
    }

    private static final class PrimitiveArraySerializer extends Serializer<Object> {
        private final Class<?> type;
        private final int maxLength;

        PrimitiveArraySerializer(Class<?> type, int maxLength) {
            super(true);
            this.type = type;
            this.maxLength = maxLength;
        }

        @Override
        public void write(Kryo kryo, Output out, Object array) {
            if (array == null) {
                out.writeVarInt(0, true);
                return;
            }
            int n = Array.getLength(array);
            out.writeVarInt(n + 1, true);
            if (type == int.class) {
                out.writeInts((int[]) array, 0, n);
            } else if (type == long.class) {
                out.writeLongs((long[]) array, 0, n);
            } else {
                out.writeDoubles((double[]) array, 0, n);
            }
        }

        @Override
        public Object read(Kryo kryo, Input in, Class<?> ignored) {
            int n = readLength(in, maxLength, type.getName() + "[]");
            if (n < 0) {
                return null;
            }
            if (type == int.class) {
                return in.readInts(n);
            } else if (type == long.class) {
                return in.readLongs(n);
            }
            return in.readDoubles(n);
        }
    }

    private static final class ObjectArraySerializer extends Serializer<Object[]> {
        private final Class<?> component;
        private final int maxLength;

        ObjectArraySerializer(Class<?> component, int maxLength) {
            super(true);
            this.component = component;
            this.maxLength = maxLength;
        }

        @Override
        public void write(Kryo kryo, Output out, Object[] array) {
            if (array == null) {
                out.writeVarInt(0, true);
                return;
            }
            out.writeVarInt(array.length + 1, true);
            for (Object o : array) {
                kryo.writeClassAndObject(out, o);
            }
        }

        @Override
        public Object[] read(Kryo kryo, Input in, Class<? extends Object[]> type) {
            int n = readLength(in, maxLength, component.getName() + "[]");
            if (n < 0) {
                return null;
            }
            Object[] array = (Object[]) Array.newInstance(component, n);
            for (int i = 0; i < n; i++) {
                Object o = kryo.readClassAndObject(in);
                if (o != null && !component.isInstance(o)) {
                    throw new KryoException("element " + i + " of a " + component.getName() + "[] is a "
                        + o.getClass().getName());
                }
                array[i] = o;
            }
            return array;
        }
    }

    /** ArrayList, unmodifiable lists and List.of lists, rebuilt as the same kind. */
    private static final class ListSerializer extends Serializer<List<Object>> {
        private final Class<?> type;
        private final int maxLength;

        ListSerializer(Class<?> type, int maxLength) {
            super(true);
            this.type = type;
            this.maxLength = maxLength;
        }

        @Override
        public void write(Kryo kryo, Output out, List<Object> list) {
            if (list == null) {
                out.writeVarInt(0, true);
                return;
            }
            out.writeVarInt(list.size() + 1, true);
            for (Object o : list) {
                kryo.writeClassAndObject(out, o);
            }
        }

        @Override
        public List<Object> read(Kryo kryo, Input in, Class<? extends List<Object>> ignored) {
            int n = readLength(in, maxLength, "list");
            if (n < 0) {
                return null;
            }
            ArrayList<Object> items = new ArrayList<>(n);
            for (int i = 0; i < n; i++) {
                items.add(kryo.readClassAndObject(in));
            }
            if (type == ArrayList.class) {
                return items;
            }
            if (type.getName().startsWith("java.util.ImmutableCollections")) {
                return List.copyOf(items);
            }
            return Collections.unmodifiableList(items);
        }
    }

    /** An input whose strings may not declare more characters than the bound or the bytes left. */
    static final class BoundedInput extends Input {
        private final int maxLength;

        BoundedInput(byte[] bytes, int maxLength) {
            super(bytes);
            this.maxLength = maxLength;
        }

        @Override
        public String readString() {
            if (position < limit && readVarIntFlag()) {
                int start = position;
                int declared = readVarIntFlag(true);
                position = start;
                if (declared > 1) {
                    check(this, declared - 1L, maxLength, "string");
                }
            }
            return super.readString();
        }
    }
}
