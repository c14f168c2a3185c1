package io.troupe.models.data;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigParseOptions;
import com.typesafe.config.ConfigSyntax;
import io.troupe.models.checkpoint.CheckpointException;
import io.troupe.models.checkpoint.Checkpoints;
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
    /** The directory of a run that holds its checkpoints (and a cluster job's record). */
    private static final String CHECKPOINTS = "checkpoints";
    public static final long FULL_HASH_BYTES = 256L << 20;
    public static final int SAMPLES = 256;
    public static final int SAMPLE_BYTES = 1 << 20;

    /** The built-in Markov corpus. */
    public static DataFingerprint builtIn() {
        return new DataFingerprint("built-in", 0, "built-in", "built-in");
    }

    /** The fingerprint of a data path (a file or a directory, as {@link Corpora#fromPath} reads it). */
    public static DataFingerprint of(Path path) {
        return of(path, FULL_HASH_BYTES);
    }

    /**
     * As {@link #of(Path)}, hashing every byte up to {@code fullHashBytes} (at least {@link #SAMPLE_BYTES}) and
     * sampling above.
     */
    static DataFingerprint of(Path path, long fullHashBytes) {
        List<Path> files = Corpora.files(path);
        long total = 0;
        try {
            for (Path f : files) {
                total += Files.size(f);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot hash data " + path + ": " + e.getMessage(), e);
        }
        return of(path.toString(), total, new Bytes() {
            @Override
            public void all(MessageDigest sha) throws IOException {
                ByteBuffer buf = ByteBuffer.allocateDirect(SAMPLE_BYTES);
                for (Path f : files) {
                    try (FileChannel ch = FileChannel.open(f, StandardOpenOption.READ)) {
                        while (ch.read(buf.clear()) > 0) {
                            sha.update(buf.flip());
                        }
                    }
                }
            }

            @Override
            public void readAt(long pos, ByteBuffer buf) throws IOException {
                readFiles(files, pos, buf);
            }
        }, fullHashBytes);
    }

    /**
     * The fingerprint of the bytes {@code loaded} holds, {@code loaded} being {@link Corpora#fromPath}{@code (source)}:
     * its training split followed by its validation split, which together are every byte of the data in order. It is
     * the fingerprint {@link #of(Path)} gives for the same bytes, taken without reading the files a second time: up to
     * {@link #FULL_HASH_BYTES} from the mapped pages the corpus trains on, above that from the samples taken of them.
     * So it describes the bytes the corpus holds, even when the path has been replaced since it was read.
     */
    static DataFingerprint of(Path source, Corpora loaded) {
        return of(source, loaded, FULL_HASH_BYTES);
    }

    /** As {@link #of(Path, Corpora)}, with the threshold of {@link #of(Path, long)}. */
    static DataFingerprint of(Path source, Corpora loaded, long fullHashBytes) {
        TokenStream train = loaded.train();
        TokenStream val = loaded.val();
        return of(source.toString(), train.length() + val.length(), new Bytes() {
            @Override
            public void all(MessageDigest sha) {
                train.digest(sha);
                val.digest(sha);
            }

            @Override
            public void readAt(long pos, ByteBuffer buf) {
                long p = pos;
                if (p < train.length()) {
                    train.read(p, buf);
                    p = train.length();
                }
                val.read(p - train.length(), buf);
            }
        }, fullHashBytes);
    }

    /** The bytes a fingerprint covers: all of them in order, or a run of them from a position. */
    private interface Bytes {
        /** Feeds every byte, in order, to {@code sha}. */
        void all(MessageDigest sha) throws IOException;

        /** Fills {@code buf} from byte {@code pos} on, or up to the last byte. */
        void readAt(long pos, ByteBuffer buf) throws IOException;
    }

    private static DataFingerprint of(String source, long total, Bytes bytes, long fullHashBytes) {
        MessageDigest sha = sha256();
        boolean sampled = total > fullHashBytes;
        try {
            if (!sampled) {
                bytes.all(sha);
            } else {
                ByteBuffer buf = ByteBuffer.allocateDirect(SAMPLE_BYTES);
                sha.update(Long.toString(total).getBytes(StandardCharsets.US_ASCII));
                long stride = (total - SAMPLE_BYTES) / (SAMPLES - 1);
                for (int s = 0; s < SAMPLES; s++) {
                    bytes.readAt(s == SAMPLES - 1 ? total - SAMPLE_BYTES : s * stride, buf.clear());
                    sha.update(buf.flip());
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot hash data " + source + ": " + e.getMessage(), e);
        }
        return new DataFingerprint(source, total, sampled ? "sha256-sampled" : "sha256",
            HexFormat.of().formatHex(sha.digest()));
    }

    private static void readFiles(List<Path> files, long pos, ByteBuffer buf) throws IOException {
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

    /**
     * Writes {@code data.json} into {@code runDir}, replacing it atomically ({@link Checkpoints#writeAtomically}):
     * a reader sees the old record or the new one, never a mix.
     */
    public void write(Path runDir) {
        try {
            Checkpoints.writeAtomically(runDir.resolve(FILE_NAME), toJson().getBytes(StandardCharsets.UTF_8));
        } catch (CheckpointException e) {
            throw new UncheckedIOException("cannot write " + FILE_NAME + " in " + runDir + ": " + e.getMessage(),
                e.getCause() instanceof IOException io ? io : new IOException(e));
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
     * The {@code data.json} that records what the run in {@code dir} trained on. {@code dir} is a run directory
     * (the record is in it, or in its {@code checkpoints/}, where a cluster job keeps it beside its
     * {@code job.json}), a run's {@code checkpoints/} (in it, or in the run directory above), or one checkpoint in
     * a {@code checkpoints/} (a directory holding a {@code manifest.json}: looked for in that {@code checkpoints/}
     * and the run directory above). No other directory is looked in: a file of that name above a checkpoint copied
     * elsewhere, or above a run directory, is not the run's record.
     *
     * @return the file, or null when the run recorded nothing
     */
    public static Path recordIn(Path dir) {
        Path d = dir.toAbsolutePath().normalize();
        if (Files.isRegularFile(d.resolve(FILE_NAME))) {
            return d.resolve(FILE_NAME);
        }
        if (Files.isRegularFile(d.resolve(CHECKPOINTS).resolve(FILE_NAME))) {
            return d.resolve(CHECKPOINTS).resolve(FILE_NAME);
        }
        Path checkpoints = null;
        if (named(d, CHECKPOINTS)) {
            checkpoints = d;
        } else if (Files.isRegularFile(d.resolve(Checkpoints.MANIFEST)) && named(d.getParent(), CHECKPOINTS)) {
            checkpoints = d.getParent();
        }
        if (checkpoints == null) {
            return null;
        }
        if (checkpoints != d && Files.isRegularFile(checkpoints.resolve(FILE_NAME))) {
            return checkpoints.resolve(FILE_NAME);
        }
        Path run = checkpoints.getParent();
        return run != null && Files.isRegularFile(run.resolve(FILE_NAME)) ? run.resolve(FILE_NAME) : null;
    }

    private static boolean named(Path p, String name) {
        return p != null && p.getFileName() != null && p.getFileName().toString().equals(name);
    }

    /**
     * Refuses to resume from {@code resumeDir} (a run directory, its {@code checkpoints/} or one checkpoint in it:
     * {@code data.json} is looked for as {@link #recordIn} says) when that run recorded other data than {@code this}.
     * A run that recorded nothing is not checked.
     *
     * @throws IllegalArgumentException one line naming both data sources
     */
    public void requireSameAs(Path resumeDir) {
        Path json = recordIn(resumeDir);
        if (json != null) {
            DataFingerprint before = read(json);
            if (!sameData(before)) {
                throw new IllegalArgumentException("--resume " + resumeDir + ": that run trained on "
                    + before.describe() + ", this run's data is " + describe());
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
