package io.troupe.runtime.transport;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;

/**
 * The shared secret that authenticates UDP data-plane frames ({@link FrameMac}): the 128-bit SipHash
 * key derived once from the configured key material (the first 16 bytes of its SHA-256, so any text or
 * file of at least {@link #MIN_MATERIAL_BYTES} bytes will do). It never shows itself: {@link #toString()}
 * prints no key bits, and no error message names the material.
 */
public final class FrameAuthKey {
    /** The shortest key material accepted (bytes). */
    public static final int MIN_MATERIAL_BYTES = 16;

    private final long k0;
    private final long k1;

    private FrameAuthKey(long k0, long k1) {
        this.k0 = k0;
        this.k1 = k1;
    }

    /**
     * The key derived from {@code material} (at least {@link #MIN_MATERIAL_BYTES} bytes).
     *
     * @throws IllegalArgumentException naming the length (never the bytes) of material that is too short
     */
    public static FrameAuthKey of(byte[] material) {
        if (material == null || material.length < MIN_MATERIAL_BYTES) {
            throw new IllegalArgumentException("an auth key needs at least " + MIN_MATERIAL_BYTES
                + " bytes of key material: length=" + (material == null ? 0 : material.length));
        }
        try {
            byte[] digest = MessageDigest.getInstance("SHA-256").digest(material);
            ByteBuffer b = ByteBuffer.wrap(digest).order(ByteOrder.LITTLE_ENDIAN);
            return new FrameAuthKey(b.getLong(0), b.getLong(8));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is missing from this Java runtime", e);
        }
    }

    /**
     * The key derived from the UTF-8 bytes of {@code value}, trailing line breaks and spaces removed as from a
     * file's ({@link #ofFile}): a value taken from an environment variable that a key file filled (a
     * Kubernetes Secret's, with its final line break) gives the key the file gives on another host.
     */
    public static FrameAuthKey ofValue(String value) {
        byte[] bytes = value.getBytes(StandardCharsets.UTF_8);
        try {
            return of(Arrays.copyOf(bytes, withoutTrailingBlanks(bytes)));
        } finally {
            Arrays.fill(bytes, (byte) 0);
        }
    }

    /** The length of {@code bytes} without its trailing line breaks, spaces and tabs. */
    private static int withoutTrailingBlanks(byte[] bytes) {
        int n = bytes.length;
        while (n > 0 && (bytes[n - 1] == '\n' || bytes[n - 1] == '\r' || bytes[n - 1] == ' ' || bytes[n - 1] == '\t')) {
            n--;
        }
        return n;
    }

    /**
     * The key derived from the bytes of {@code file}, trailing line breaks and spaces removed (so a
     * file written by {@code openssl rand -hex 32 > key} and one written by an editor give the same key).
     *
     * @throws IllegalArgumentException naming the file when it cannot be read or is too short
     */
    public static FrameAuthKey ofFile(Path file) {
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(file);
        } catch (java.io.IOException e) {
            throw new IllegalArgumentException("cannot read the auth key file: file=" + file + " (" + e + ")", e);
        }
        try {
            return of(Arrays.copyOf(bytes, withoutTrailingBlanks(bytes)));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(e.getMessage() + ", file=" + file, e);
        } finally {
            Arrays.fill(bytes, (byte) 0);
        }
    }

    /** A key of these raw SipHash key bits (tests: the published SipHash vectors). */
    static FrameAuthKey ofRawKey(long k0, long k1) {
        return new FrameAuthKey(k0, k1);
    }

    /** The first 64 bits of the SipHash key. */
    long k0() {
        return k0;
    }

    /** The second 64 bits of the SipHash key. */
    long k1() {
        return k1;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof FrameAuthKey other && other.k0 == k0 && other.k1 == k1;
    }

    @Override
    public int hashCode() {
        return 0x5ec2e7; // the same for every key: a hash must not leak key bits
    }

    /** Never the key. */
    @Override
    public String toString() {
        return "FrameAuthKey[redacted]";
    }
}
