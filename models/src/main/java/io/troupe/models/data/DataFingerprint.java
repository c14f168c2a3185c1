package io.troupe.models.data;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigParseOptions;
import com.typesafe.config.ConfigSyntax;
import io.troupe.models.checkpoint.JsonChecksum;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;

/**
 * What a run trained on: the data path, its size and a SHA-256 of its bytes, recorded as
 * {@code data.json} in the run directory so that {@code --resume} with other data is refused.
 * Up to {@link #FULL_HASH_BYTES} the hash covers every byte (of the files' concatenation, for a
 * directory); a larger corpus is hashed over {@link #SAMPLES} blocks of {@link #SAMPLE_BYTES}
 * spread evenly from its first to its last byte, plus its size ({@code hash_kind: "sha256-sampled"}),
 * so the check costs
 * the same on a terabyte as on a gigabyte. The built-in corpus has size 0 and hash {@code built-in}. On a cluster each
 * rank reports the fingerprint of the data it read as a {@link #token()}, so that ranks reading different bytes at the
 * job's data path are refused before the first step.
 *
 * @param source    the data path as given, or {@code built-in}
 * @param sizeBytes total bytes
 * @param hashKind  {@code sha256}, {@code sha256-sampled} or {@code built-in}
 * @param hash      hex digest, or {@code built-in}
 */
public record DataFingerprint(String source, long sizeBytes, String hashKind, String hash) {
    public static final String FILE_NAME = "data.json";
    public static final long FULL_HASH_BYTES = 256L << 20;
    public static final int SAMPLES = 256;
    public static final int SAMPLE_BYTES = 1 << 20;

    /** The built-in Markov corpus. */
    public static DataFingerprint builtIn() {
        return new DataFingerprint("built-in", 0, "built-in", "built-in");
    }

    /** The fingerprint of a data path (a file or a directory, as {@link Corpora#fromPath} reads it). */
    public static DataFingerprint of(Path path) {
        List<Path> files = Corpora.files(path);
        MessageDigest sha = sha256();
        long total = 0;
        try {
            for (Path f : files) {
                total += Files.size(f);
            }
            boolean sampled = total > FULL_HASH_BYTES;
            ByteBuffer buf = ByteBuffer.allocateDirect(SAMPLE_BYTES);
            if (!sampled) {
                for (Path f : files) {
                    try (FileChannel ch = FileChannel.open(f, StandardOpenOption.READ)) {
                        while (ch.read(buf.clear()) > 0) {
                            sha.update(buf.flip());
                        }
                    }
                }
            } else {
                sha.update(Long.toString(total).getBytes(StandardCharsets.US_ASCII));
                long stride = (total - SAMPLE_BYTES) / (SAMPLES - 1);
                for (int s = 0; s < SAMPLES; s++) {
                    readAt(files, s == SAMPLES - 1 ? total - SAMPLE_BYTES : s * stride, buf.clear());
                    sha.update(buf.flip());
                }
            }
            return new DataFingerprint(path.toString(), total, sampled ? "sha256-sampled" : "sha256",
                HexFormat.of().formatHex(sha.digest()));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot hash data " + path + ": " + e.getMessage(), e);
        }
    }

    private static void readAt(List<Path> files, long pos, ByteBuffer buf) throws IOException {
        long fileStart = 0;
        for (Path f : files) {
            try (FileChannel ch = FileChannel.open(f, StandardOpenOption.READ)) {
                long size = ch.size();
                long p = pos;
                while (buf.hasRemaining() && p < fileStart + size) {
                    int n = ch.read(buf, p - fileStart);
                    if (n <= 0) {
                        break;
                    }
                    p += n;
                }
                pos = p;
                fileStart += size;
            }
            if (!buf.hasRemaining()) {
                return;
            }
        }
    }

    /** Whether {@code other} is the same data (size and hash; the path may differ). */
    public boolean sameData(DataFingerprint other) {
        return sizeBytes == other.sizeBytes && hashKind.equals(other.hashKind) && hash.equals(other.hash);
    }

    /** One line for messages: {@code PATH (N bytes, sha256 0123456789ab)}. */
    public String describe() {
        return hashKind.equals("built-in") ? "the built-in corpus"
            : source + " (" + sizeBytes + " bytes, " + hashKind + " " + hash.substring(0, 12) + ")";
    }

    /**
     * The fingerprint as {@code data.json} holds it: a JSON object on one line, its strings quoted as the run's other
     * JSON files quote theirs (quotes, backslashes and control characters escaped), so any path gives valid JSON.
     */
    public String toJson() {
        return String.format(Locale.ROOT,
            "{\"source\": %s, \"size_bytes\": %d, \"hash_kind\": %s, \"hash\": %s}%n",
            JsonChecksum.quote(source), sizeBytes, JsonChecksum.quote(hashKind), JsonChecksum.quote(hash));
    }

    /**
     * The fingerprint less its source, as control messages carry it: {@code KIND:SIZE:HASH}
     * ({@code sha256:1048576:0123...}); {@link #fromToken} reads it back.
     */
    public String token() {
        return hashKind + ":" + sizeBytes + ":" + hash;
    }

    /**
     * Reads a {@link #token()}, naming {@code source} as its data path.
     *
     * @throws IllegalArgumentException naming the token when it is not {@code KIND:SIZE:HASH}
     */
    public static DataFingerprint fromToken(String source, String token) {
        String[] parts = token.split(":", -1);
        if (parts.length != 3 || parts[0].isEmpty() || parts[2].isEmpty()) {
            throw new IllegalArgumentException("not a data fingerprint (KIND:SIZE:HASH): '" + token + "'");
        }
        try {
            long size = Long.parseLong(parts[1]);
            if (size < 0) {
                throw new NumberFormatException("negative");
            }
            return new DataFingerprint(source, size, parts[0], parts[2]);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("not a data fingerprint (KIND:SIZE:HASH, SIZE bytes): '" + token + "'",
                e);
        }
    }

    /** Writes {@code data.json} into {@code runDir}. */
    public void write(Path runDir) {
        try {
            Files.createDirectories(runDir);
            Files.writeString(runDir.resolve(FILE_NAME), toJson());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + FILE_NAME + " in " + runDir + ": " + e.getMessage(), e);
        }
    }

    /** Reads a {@code data.json} written by {@link #write}. */
    public static DataFingerprint read(Path json) {
        String s;
        try {
            s = Files.readString(json);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + json + ": " + e.getMessage(), e);
        }
        try {
            Config c = ConfigFactory.parseString(s, ConfigParseOptions.defaults().setSyntax(ConfigSyntax.JSON));
            return new DataFingerprint(c.getString("source"), c.getLong("size_bytes"), c.getString("hash_kind"),
                c.getString("hash"));
        } catch (ConfigException e) {
            throw new IllegalArgumentException(json + ": unreadable " + FILE_NAME + ": " + e.getMessage(), e);
        }
    }

    /**
     * Refuses to resume from {@code resumeDir} (a run directory, its {@code checkpoints/} or one
     * checkpoint in it: {@code data.json} is looked for there and up to two levels up) when that
     * run recorded other data than {@code this}. A run that recorded nothing is not checked.
     *
     * @throws IllegalArgumentException one line naming both data sources
     */
    public void requireSameAs(Path resumeDir) {
        Path d = resumeDir.toAbsolutePath();
        for (int up = 0; up < 3 && d != null; up++, d = d.getParent()) {
            Path json = d.resolve(FILE_NAME);
            if (Files.isRegularFile(json)) {
                DataFingerprint before = read(json);
                if (!sameData(before)) {
                    throw new IllegalArgumentException("--resume " + resumeDir + ": that run trained on "
                        + before.describe()
                        + ", this run's data is " + describe());
                }
                return;
            }
        }
    }

    private static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
