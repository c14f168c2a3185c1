package io.troupe.runtime.cpu;

import java.lang.reflect.Field;
import sun.misc.Unsafe;

/**
 * Raw access to native host memory for the CPU kernels. Addresses come from {@link CpuStorage};
 * callers have checked bounds once per op, so element accesses here are unchecked.
 */
final class CpuMemory {
    static final Unsafe UNSAFE = loadUnsafe();
    static final int ALIGNMENT_BYTES = 64;

    private CpuMemory() {
    }

    private static Unsafe loadUnsafe() {
        try {
            Field f = Unsafe.class.getDeclaredField("theUnsafe");
            f.setAccessible(true);
            return (Unsafe) f.get(null);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    static float getFloat(long base, long index) {
        return UNSAFE.getFloat(base + (index << 2));
    }

    static void putFloat(long base, long index, float v) {
        UNSAFE.putFloat(base + (index << 2), v);
    }

    static int getInt(long base, long index) {
        return UNSAFE.getInt(base + (index << 2));
    }
}
