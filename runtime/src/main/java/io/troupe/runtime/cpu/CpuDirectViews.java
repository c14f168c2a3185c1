package io.troupe.runtime.cpu;

import java.lang.reflect.Constructor;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * Direct {@link ByteBuffer} views of the CPU device's off-heap memory, for kernels that read and write
 * tensors in place with the Vector API ({@code FloatVector.fromByteBuffer}) instead of staging them
 * through heap arrays. A view is made by the JDK's own constructor for memory it does not own (the one
 * JNI's {@code NewDirectByteBuffer} uses), which needs {@code --add-opens java.base/java.nio=ALL-UNNAMED}
 * (Troupe's launchers and tests pass it); without it {@link #AVAILABLE} is false and callers keep their
 * staged forms.
 */
final class CpuDirectViews {
    /** Largest view, in bytes (an int capacity; callers cut longer ranges). */
    static final int MAX_BYTES = 1 << 30;
    private static final Constructor<?> CONSTRUCTOR = constructor();
    /** Whether views can be made in this JVM. */
    static final boolean AVAILABLE = CONSTRUCTOR != null;

    private CpuDirectViews() {
    }

    private static Constructor<?> constructor() {
        try {
            Constructor<?> c = Class.forName("java.nio.DirectByteBuffer").getDeclaredConstructor(long.class, int.class);
            c.setAccessible(true);
            long probeAddress = CpuMemory.UNSAFE.allocateMemory(8);
            try {
                return ((ByteBuffer) c.newInstance(probeAddress, 8)).isDirect() ? c : null;
            } finally {
                CpuMemory.UNSAFE.freeMemory(probeAddress);
            }
        } catch (ReflectiveOperationException | RuntimeException e) {
            return null;                        // not opened to us, or another JDK's constructor
        }
    }

    /** A native-order view of {@code bytes} bytes at {@code address} ({@code bytes <= MAX_BYTES}). */
    static ByteBuffer view(long address, long bytes) {
        if (bytes < 0 || bytes > MAX_BYTES) {
            throw new IllegalArgumentException("direct view of " + bytes + " bytes: must be in [0, " + MAX_BYTES + "]");
        }
        try {
            return ((ByteBuffer) CONSTRUCTOR.newInstance(address, (int) bytes)).order(ByteOrder.nativeOrder());
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException("cannot view " + bytes + " bytes at " + address + ": " + e, e);
        }
    }
}
