package io.troupe.runtime.transport;

import java.nio.Buffer;
import java.nio.ByteBuffer;
import java.util.zip.CRC32C;
import org.agrona.UnsafeApi;

/**
 * CRC32C of native memory without allocating, using the JDK's intrinsic
 * ({@link CRC32C#update(ByteBuffer)} on a direct buffer). The direct buffer is a private slice whose
 * address and capacity are re-pointed at the memory to check, which needs only the
 * {@code jdk.internal.misc} export Troupe already requires (Agrona's {@code Crc32c} would need
 * {@code --add-opens java.base/java.util.zip} in every launcher).
 *
 * <p>Threading: one thread per instance.
 */
public final class Crc32cCalculator {
    private static final long ADDRESS_FIELD = UnsafeApi.objectFieldOffset(Buffer.class, "address");
    private static final long CAPACITY_FIELD = UnsafeApi.objectFieldOffset(Buffer.class, "capacity");

    private final CRC32C crc = new CRC32C();
    // a slice owns no memory and has no cleaner, so re-pointing it frees nothing; the parent stays reachable
    private final ByteBuffer view = ByteBuffer.allocateDirect(64).slice();

    /** CRC32C of {@code length} bytes at native {@code address}, as {@code (int) CRC32C.getValue()}. */
    public int compute(long address, int length) {
        UnsafeApi.putLong(view, ADDRESS_FIELD, address);
        UnsafeApi.putInt(view, CAPACITY_FIELD, length);
        view.clear();
        crc.reset();
        crc.update(view);
        return (int) crc.getValue();
    }
}
